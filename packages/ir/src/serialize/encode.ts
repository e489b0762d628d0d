import { type HostArray, isDType } from '../dtype.js';
import type { GraphData, Node } from '../graph/graph.js';
import { describeNode } from '../graph/graph.js';
import { isRegion, type Region } from '../graph/region.js';
import { serializationError } from './error.js';
import { dtypeCode } from './format.js';
import { toLittleEndianBytes } from './tensor-bytes.js';

/** GraphData -> the payload tree of format.ts, ready for msgpack. The graph has been verified. */
export function graphToPayload(graph: GraphData): unknown[] {
  const { nodes, values } = encodeBody(graph);
  const initializers = graph.initializers.map((i) => [i.variable, i.value]);
  const outputs = Object.entries(graph.outputs).map(([name, v]) => [name, v]);
  return [nodes, values, initializers, outputs];
}

function encodeBody(graph: GraphData): { nodes: unknown[]; values: unknown[] } {
  const nodes = graph.nodes.map((node) => [
    node.op,
    [...node.inputs],
    encodeAttrs(node),
    [...node.outputs],
    node.name ?? null,
    // Written only when set, so graphs without device scopes keep the five-element node.
    ...(node.device === undefined ? [] : [node.device]),
  ]);
  const values = graph.values.map((v) => [dtypeCode(v.type.dtype), [...v.type.shape]]);
  return { nodes, values };
}

/** A region attribute as the map of format.ts (keys in REGION_KEYS order). */
function encodeRegion(region: Region): Record<string, unknown> {
  const { nodes, values } = encodeBody(region);
  return { nodes, values, inputs: [...region.inputs], results: [...region.results] };
}

function encodeAttrs(node: Node): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node.attrs)) {
    // An absent attribute and an undefined one mean the same to parseAttrs; msgpack has only one.
    if (value === undefined) continue;
    out[key] = encodeAttrValue(value, () => `${describeNode(node)}: attribute '${key}'`);
  }
  return out;
}

const isHostArray = (x: unknown): x is HostArray =>
  x instanceof Float32Array || x instanceof Int32Array || x instanceof Uint8Array;

function encodeAttrValue(value: unknown, where: () => string): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Object.is(value, -0) ? new Float64Array([-0]) : value;
  if (Array.isArray(value)) return value.map((v) => encodeAttrValue(v, where));
  if (typeof value === 'object') {
    const { dtype, shape, data } = value as { dtype?: unknown; shape?: unknown; data?: unknown };
    if (isDType(dtype) && Array.isArray(shape) && isHostArray(data)) {
      return { dtype: dtypeCode(dtype), shape: [...shape], data: toLittleEndianBytes(data) };
    }
    if (isRegion(value)) return encodeRegion(value);
  }
  throw serializationError(`cannot serialize ${where()}: ${typeof value} is not an attribute value`);
}
