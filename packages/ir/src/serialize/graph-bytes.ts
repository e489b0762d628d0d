import { KilnError } from '../errors.js';
import type { GraphData } from '../graph/graph.js';
import { verifyGraph } from '../graph/verify.js';
import { payloadToGraph } from './decode.js';
import { graphToPayload } from './encode.js';
import { serializationError } from './error.js';
import { readFrame, writeFrame } from './frame.js';
import { packPayload, unpackPayload } from './msgpack.js';

function verified(graph: GraphData, what: string): void {
  try {
    verifyGraph(graph);
  } catch (e) {
    // Only the verifier's own verdicts are rewrapped: anything else it throws is a bug in the
    // verifier, and hiding it behind 'serialization' would keep it from being found.
    if (e instanceof KilnError) throw serializationError(`${what}: ${e.message}`, e);
    throw e;
  }
}

/**
 * A graph as bytes: a 16-byte header (magic, format version, flags, payload length, CRC-32) and a
 * msgpack payload. The graph is verified first, so every byte string this returns also loads.
 * Deterministic: the same graph always gives the same bytes.
 */
export function serializeGraph(graph: GraphData): Uint8Array {
  verified(graph, 'cannot serialize a graph that fails verification');
  return writeFrame(packPayload(graphToPayload(graph)));
}

/**
 * Reads bytes written by serializeGraph back into plain graph data (wrap it with `Graph.from` to
 * extend or run it). Bytes are data: nothing in them is executed, and anything that is not a valid
 * kiln graph of a supported version, including a structurally sound graph that fails verification,
 * is rejected with a KilnError('serialization') saying what was wrong.
 */
export function deserializeGraph(bytes: Uint8Array): GraphData {
  const payload = readFrame(bytes);
  const graph = payloadToGraph(unpackPayload(payload), payload.length);
  verified(graph, 'graph fails verification');
  return graph;
}
