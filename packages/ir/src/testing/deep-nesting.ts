import type { ByteMutation } from './byte-mutations.js';
import { msgpackItems } from './msgpack-layout.js';

/**
 * One value wrapped in containers nested tens to twenty thousand deep, written as bytes (a tree
 * that deep cannot be built and packed on the JS stack). The result is still one well-formed
 * msgpack value, so the nesting reaches the msgpack reader's recursion and whatever reads past it.
 */
const DEPTHS = [64, 300, 1000, 2500, 4000, 6000, 20_000];

/**
 * The bytes in front of the value: `head` once, then `unit` once per `levels` levels. Besides
 * arrays and single-key maps, the ways msgpackr nests without a container header: a Set extension
 * reads the value after it, and after one record definition each single byte 0x40 is a record
 * whose one field is the next value.
 */
const STYLES: Readonly<Record<string, { head: number[]; unit: number[]; levels: number }>> = {
  array: { head: [], unit: [0x91], levels: 1 },
  map: { head: [], unit: [0x81, 0xa1, 0x6b], levels: 1 },
  mixed: { head: [], unit: [0x91, 0x81, 0xa1, 0x6b], levels: 2 },
  set: { head: [], unit: [0xd4, 0x73, 0x00, 0x91], levels: 2 },
  // fixext1 0x72 defines record 0x40 with the keys ["k"] and reads the first such record.
  record: { head: [0xd4, 0x72, 0x40, 0x91, 0xa1, 0x6b], unit: [0x40], levels: 1 },
};

export const nestDeeply: ByteMutation = (rng, bytes, notes) => {
  const items = msgpackItems(bytes);
  const at = items.length ? rng.pick(items).start : 0;
  const depth = rng.pick(DEPTHS);
  const style = rng.pick(Object.keys(STYLES));
  const { head, unit, levels } = STYLES[style]!;
  const count = Math.ceil(depth / levels);
  const prefix = new Uint8Array(head.length + count * unit.length);
  prefix.set(head);
  for (let i = 0; i < count; i++) prefix.set(unit, head.length + i * unit.length);
  notes.push(`nest ${style} ${depth} deep at ${at}`);
  const out = new Uint8Array(at + prefix.length + bytes.length - at);
  out.set(bytes.subarray(0, at));
  out.set(prefix, at);
  out.set(bytes.subarray(at), at + prefix.length);
  return out;
};
