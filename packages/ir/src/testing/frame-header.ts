import type { Prng } from '../prng.js';
import { crc32 } from '../serialize/crc32.js';
import { GRAPH_HEADER_BYTES } from '../serialize/frame.js';
import { copyBytes } from './byte-mutations.js';

/**
 * The 16-byte header of graph and checkpoint files (serialize/frame.ts): magic, version, flags,
 * payload length, CRC-32. A random change to a payload almost always breaks the CRC, which would
 * leave every check behind it untested; so payload mutations are followed by `repairFrame`, and
 * the header's own checks get mutations of their own (`forgeHeader`).
 */

/** The payload of a framed byte string (a view). */
export function framePayload(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(GRAPH_HEADER_BYTES);
}

/** `header`'s first 16 bytes in front of `payload`, with the length and CRC made to match it. */
export function reframe(header: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(GRAPH_HEADER_BYTES + payload.length);
  out.set(header.subarray(0, GRAPH_HEADER_BYTES));
  out.set(payload, GRAPH_HEADER_BYTES);
  return repairFrame(out);
}

/** Rewrites the length and CRC fields (in place) to match the bytes after the header. */
export function repairFrame(bytes: Uint8Array): Uint8Array {
  if (bytes.length < GRAPH_HEADER_BYTES) return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payload = framePayload(bytes);
  view.setUint32(8, payload.length, true);
  view.setUint32(12, crc32(payload), true);
  return bytes;
}

const HEADER_FIELDS = ['magic', 'version', 'flags', 'length', 'crc'] as const;

/**
 * One header field set to a boundary or random value. The length is forged relative to the real
 * one too (one off, doubled, zero, the maximum) and then, half the time, the CRC is repaired, so
 * the length check itself must catch it.
 */
export function forgeHeader(rng: Prng, bytes: Uint8Array, notes: string[]): Uint8Array {
  const out = copyBytes(bytes);
  if (out.length < GRAPH_HEADER_BYTES) return out;
  const view = new DataView(out.buffer);
  const field = rng.pick(HEADER_FIELDS);
  const real = view.getUint32(8, true);
  const value =
    field === 'length'
      ? rng.pick([
          real + 1,
          real - 1,
          real * 2,
          real + 2 ** 20,
          0,
          2 ** 31,
          0xffffffff,
          rng.int(0, 0xffffffff),
        ])
      : rng.pick([0, 1, 2, 7, 0xff, 0xffff, 0xffffffff, rng.int(0, 0xffffffff)]);
  notes.push(`header ${field} = ${value >>> 0}`);
  if (field === 'magic') out[rng.int(0, 3)] = value & 0xff;
  else if (field === 'version') view.setUint16(4, value & 0xffff, true);
  else if (field === 'flags') view.setUint16(6, value & 0xffff, true);
  else if (field === 'length') {
    view.setUint32(8, value >>> 0, true);
    if (rng.bool()) {
      view.setUint32(12, crc32(framePayload(out)), true);
      notes.push('crc repaired');
    }
  } else view.setUint32(12, value >>> 0, true);
  return out;
}
