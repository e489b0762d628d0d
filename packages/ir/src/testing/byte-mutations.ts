import type { Prng } from '../prng.js';

/**
 * Mutations that know nothing about the format: they damage bytes the way storage, transit or a
 * careless writer would. Each returns new bytes (the input is never changed) and notes what it did,
 * so a failing case can be read without replaying it.
 */
export type ByteMutation = (rng: Prng, bytes: Uint8Array, notes: string[]) => Uint8Array;

/** Type bytes that mean the most to a msgpack reader: nil, never-used, the 32-bit lengths, ... */
const EXTREME_BYTES = [0x00, 0x7f, 0x80, 0x9f, 0xc0, 0xc1, 0xc6, 0xc9, 0xcf, 0xd3, 0xdb, 0xdd, 0xdf, 0xff];

/**
 * A copy in a fresh buffer. Not `bytes.slice()`: on a Node Buffer (what msgpackr's pack returns)
 * that is a view, and mutating it would damage the source every later case starts from.
 */
export const copyBytes = (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array =>
  new Uint8Array(bytes.subarray(start, end));

const randomBytes = (rng: Prng, length: number) => Uint8Array.from({ length }, () => rng.int(0, 255));

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One bit, or up to 16 of them at random places. */
export const flipBits: ByteMutation = (rng, bytes, notes) => {
  const out = copyBytes(bytes);
  if (out.length === 0) return out;
  const n = rng.bool(0.6) ? 1 : rng.int(2, 16);
  const where: string[] = [];
  for (let k = 0; k < n; k++) {
    const i = rng.int(0, out.length - 1);
    const bit = rng.int(0, 7);
    out[i]! ^= 1 << bit;
    where.push(`${i}.${bit}`);
  }
  notes.push(`flip bits ${where.join(' ')}`);
  return out;
};

/** Up to 8 bytes set to boundary values (msgpack's type bytes among them) or random ones. */
export const setBytes: ByteMutation = (rng, bytes, notes) => {
  const out = copyBytes(bytes);
  if (out.length === 0) return out;
  const n = rng.int(1, 8);
  const where: string[] = [];
  for (let k = 0; k < n; k++) {
    const i = rng.int(0, out.length - 1);
    out[i] = rng.bool(0.7) ? rng.pick(EXTREME_BYTES) : rng.int(0, 255);
    where.push(`${i}=${out[i]!.toString(16)}`);
  }
  notes.push(`set bytes ${where.join(' ')}`);
  return out;
};

export const insertBytes: ByteMutation = (rng, bytes, notes) => {
  const at = rng.int(0, bytes.length);
  const extra = rng.bool() ? randomBytes(rng, rng.int(1, 8)) : Uint8Array.of(rng.pick(EXTREME_BYTES));
  notes.push(`insert ${extra.length} bytes at ${at}`);
  return join(bytes.subarray(0, at), extra, bytes.subarray(at));
};

export const deleteBytes: ByteMutation = (rng, bytes, notes) => {
  const at = rng.int(0, bytes.length);
  const n = rng.int(1, Math.min(16, Math.max(1, bytes.length - at)));
  notes.push(`delete ${n} bytes at ${at}`);
  return join(bytes.subarray(0, at), bytes.subarray(at + n));
};

/** Cut short anywhere, the empty string and one byte short included. */
export const truncate: ByteMutation = (rng, bytes, notes) => {
  const n = rng.bool(0.2) ? Math.max(0, bytes.length - 1) : rng.int(0, Math.max(0, bytes.length - 1));
  notes.push(`truncate to ${n} bytes`);
  return copyBytes(bytes, 0, n);
};

/**
 * Bytes after the end: garbage, a nil (itself a complete msgpack value), or a copy of the whole
 * input, so a reader that stops after the first value is caught.
 */
export const appendTrailing: ByteMutation = (rng, bytes, notes) => {
  const extra = rng.pick<() => Uint8Array>([
    () => randomBytes(rng, rng.int(1, 16)),
    () => Uint8Array.of(0xc0),
    () => copyBytes(bytes),
  ])();
  notes.push(`append ${extra.length} trailing bytes`);
  return join(bytes, extra);
};

/**
 * A run of bytes copied from a donor (another valid input, or the input itself) over a run of the
 * input: valid fragments in the wrong place get further into a decoder than random bytes do.
 */
export function splice(donors: readonly Uint8Array[]): ByteMutation {
  return (rng, bytes, notes) => {
    const donorIndex = rng.int(0, donors.length);
    const donor = donors[donorIndex] ?? bytes;
    if (donor.length === 0) return copyBytes(bytes);
    const at = rng.int(0, bytes.length);
    const cut = rng.int(0, Math.min(64, bytes.length - at));
    const from = rng.int(0, donor.length - 1);
    const length = rng.int(0, Math.min(64, donor.length - from));
    notes.push(
      `splice [${at},+${cut}) <- ${donorIndex === donors.length ? 'self' : `donor ${donorIndex}`}[${from},+${length})`,
    );
    return join(bytes.subarray(0, at), donor.subarray(from, from + length), bytes.subarray(at + cut));
  };
}
