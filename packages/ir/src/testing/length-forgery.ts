import type { Prng } from '../prng.js';
import { type ByteMutation, copyBytes } from './byte-mutations.js';
import { headerBytes, lengthHeader, type MsgpackItem, maxLength, msgpackItems } from './msgpack-layout.js';

/**
 * A str, bin, ext, array or map whose length prefix lies: a little more or less than the bytes or
 * elements that follow, zero, or as much as the field holds. The forged length is written in the
 * item's own width when it fits there and in a wider form when not, so a reader meets both a count
 * that runs past the end (and must not trust it for an allocation) and one that stops short (and
 * leaves the rest to be misread as further values).
 */
export const forgeLength: ByteMutation = (rng, bytes, notes) => {
  const items = msgpackItems(bytes).filter((item) => item.kind !== 'scalar');
  if (items.length === 0) return copyBytes(bytes);
  const item = rng.pick(items);
  const length = forgedLength(rng, item);
  const header = forgedHeader(rng, item, length, bytes);
  notes.push(`forge ${item.kind} length at ${item.start}: ${item.length} -> ${length}`);
  const rest = bytes.subarray(item.start + headerBytes(item));
  const out = new Uint8Array(item.start + header.length + rest.length);
  out.set(bytes.subarray(0, item.start));
  out.set(header, item.start);
  out.set(rest, item.start + header.length);
  return out;
};

function forgedLength(rng: Prng, item: MsgpackItem): number {
  const n = item.length;
  return rng.pick([
    n + 1,
    Math.max(0, n - 1),
    n + rng.int(2, 100),
    Math.floor(n / 2),
    n * 2 + 1,
    0,
    maxLength(item.kind, item.width),
    2 ** 16 - 1,
    2 ** 31,
    2 ** 32 - 1,
    rng.int(0, 2 ** 32 - 1),
  ]);
}

function forgedHeader(rng: Prng, item: MsgpackItem, length: number, bytes: Uint8Array): number[] {
  if (item.kind === 'ext') {
    // ext keeps its type byte; the length goes in the smallest explicit field that holds it.
    const type = bytes[item.start + 1 + item.width]!;
    const width = length <= 0xff ? 1 : length <= 0xffff ? 2 : 4;
    const first = width === 1 ? 0xc7 : width === 2 ? 0xc8 : 0xc9;
    const field = Array.from({ length: width }, (_, i) => Math.floor(length / 256 ** (width - 1 - i)) % 256);
    return [first, ...field, type];
  }
  const widths = [0, 1, 2, 4] as const;
  const fits = widths.filter((w) => length <= maxLength(item.kind, w) && (w > 0 || item.kind !== 'bin'));
  // Usually the item's own width when the length fits it; sometimes any width that holds it.
  const width = fits.includes(item.width) && rng.bool(0.7) ? item.width : rng.pick(fits);
  return lengthHeader(item.kind as 'str' | 'bin' | 'array' | 'map', length, width);
}
