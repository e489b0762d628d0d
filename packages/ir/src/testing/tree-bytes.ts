import { packPayload } from '../serialize/msgpack.js';
import { msgpackItems } from './msgpack-layout.js';

/**
 * A decoded tree packed back into msgpack, -0 included. msgpackr writes the number -0 as the
 * integer 0, so a -0 that type confusion put in the tree would never reach a decoder; yet a
 * hostile writer can send the float64 -0, and JS tells it apart from 0 (Object.is, 1 / x). Each -0
 * is packed as a stand-in float64 that no source holds, then its eight bytes are rewritten.
 */
const STAND_IN = -1.2345e-300;
const STAND_IN_BITS = floatBits(STAND_IN);
const NEGATIVE_ZERO_BITS = floatBits(-0);

function floatBits(x: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, x);
  return bytes;
}

export function packTree(tree: unknown): Uint8Array {
  const replaced = replaceNegativeZeros(tree);
  const bytes = packPayload(replaced.tree);
  if (replaced.count === 0) return bytes;
  const out = new Uint8Array(bytes);
  for (const item of msgpackItems(out)) {
    if (out[item.start] !== 0xcb) continue;
    const at = item.start + 1;
    if (STAND_IN_BITS.every((b, i) => out[at + i] === b)) out.set(NEGATIVE_ZERO_BITS, at);
  }
  return out;
}

/** The tree with each -0 among its numbers (not inside typed arrays) made the stand-in. */
function replaceNegativeZeros(tree: unknown): { tree: unknown; count: number } {
  if (Object.is(tree, -0)) return { tree: STAND_IN, count: 1 };
  let count = 0;
  const stack: unknown[] = [tree];
  while (stack.length) {
    const x = stack.pop();
    if (typeof x !== 'object' || x === null || ArrayBuffer.isView(x)) continue;
    if (!Array.isArray(x) && Object.getPrototypeOf(x) !== Object.prototype) continue;
    const entries = x as Record<string, unknown>;
    for (const key of Object.keys(entries)) {
      const v = entries[key];
      if (Object.is(v, -0)) {
        // Not an assignment: under the key '__proto__' that would set the prototype instead.
        Object.defineProperty(entries, key, {
          value: STAND_IN,
          enumerable: true,
          writable: true,
          configurable: true,
        });
        count++;
      } else stack.push(v);
    }
  }
  return { tree, count };
}
