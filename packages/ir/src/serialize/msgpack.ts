import { Packr, Unpackr } from 'msgpackr';
import { serializationError } from './error.js';
import { nestingRefusal } from './msgpack-nesting.js';

/**
 * msgpackr configured for graph payloads. The writer uses plain msgpack maps rather than msgpackr's
 * records (an extension of its own), and keeps typed arrays as typed arrays, bit for bit. The reader
 * refuses msgpackr's structured-clone references; whatever else it can produce from hostile bytes
 * (dates, sets, regular expressions, error objects, bigints) is inert data that the payload
 * validation rejects, since it accepts only the shapes described in format.ts.
 */
const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({
  useRecords: false,
  moreTypes: true,
  mapsAsObjects: true,
  structuredClone: false,
});

export function packPayload(payload: unknown): Uint8Array {
  return packr.pack(payload);
}

export function unpackPayload(bytes: Uint8Array): unknown {
  return decodeMsgpack(bytes, (reason, cause) =>
    serializationError(`payload is not valid msgpack: ${reason}`, cause),
  );
}

/**
 * Decodes exactly one msgpack value filling all of `bytes`; anything else (bytes that are not
 * msgpack, a value that ends early, bytes left over after it, nesting deeper than
 * MAX_MSGPACK_DEPTH, msgpackr's records and string bundles) is `fail(reason)`. Every kiln decoder
 * of untrusted bytes (graphs, checkpoints, wire frames) reads through here.
 *
 * Why not `unpack`: on bytes left over it renders the whole decoded value with JSON.stringify for
 * its message, which for a 16 MB graph takes seconds and gigabytes. Read as a sequence whose first
 * value ends the read, the same check costs nothing, so rejecting bad bytes never costs more than
 * accepting good ones.
 */
export function decodeMsgpack(bytes: Uint8Array, fail: (reason: string, cause?: unknown) => Error): unknown {
  // Bounded before decoding, so how deep the caller's stack already is never decides the outcome.
  const refusal = nestingRefusal(bytes);
  if (refusal) throw fail(refusal);
  let value: unknown;
  let end = -1;
  try {
    unpackr.unpackMultiple(bytes, (v: unknown, _start?: number, stop?: number) => {
      value = v;
      end = stop ?? -1;
      return false;
    });
  } catch (e) {
    // Whatever msgpackr throws (its own errors, or a RangeError from deeply nested input) means the
    // same thing here: the bytes are not one msgpack value.
    throw fail(reasonOf(e), e);
  }
  if (end !== bytes.length) {
    const extra = bytes.length - end;
    throw fail(
      `${extra} byte${extra === 1 ? '' : 's'} left over after the msgpack value, which ends at byte ${end}`,
    );
  }
  return value;
}

/** msgpackr's message, without advice about its options. */
function reasonOf(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.startsWith('Invalid property type for record')) return 'a map has a key that is not a string';
  return message.slice(0, 200);
}
