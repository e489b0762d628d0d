import { Packr, Unpackr } from 'msgpackr';
import { serializationError } from './error.js';

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
  try {
    return unpackr.unpack(bytes);
  } catch (e) {
    // Whatever msgpackr throws (its own errors, or a RangeError from deeply nested input) means the
    // same thing here: the checksum matched, but the bytes are not msgpack.
    throw serializationError(`payload is not valid msgpack: ${reasonOf(e)}`, e);
  }
}

/** msgpackr's message, without the JSON dump of the data or advice about its options. */
function reasonOf(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.startsWith('Data read, but end of buffer not reached'))
    return 'bytes left over after the msgpack value';
  if (message.startsWith('Invalid property type for record')) return 'a map has a key that is not a string';
  return message.slice(0, 200);
}
