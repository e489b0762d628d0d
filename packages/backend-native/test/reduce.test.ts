import { opDef, Prng } from '@kiln/ir';
import { compareToReference } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { addon, unavailableReason } from '../src/index.js';
import { differing } from './differing-bits.js';

/**
 * The native reductions (native/reduce.cc) on what the conformance kit's small cases do not reach:
 * contiguous reduced axes of every length around the 16 lanes a row is dealt to (tails included),
 * long ones, and NaN and zeros of both signs in every lane, against the float64 reference; max and
 * min must match it bit for bit.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native reduction tests: ${unavailableReason}`);

const KINDS = ['sum', 'mean', 'prod', 'max', 'min'] as const;

function reference(kind: (typeof KINDS)[number], x: Float32Array, shape: number[], axes: number[]) {
  const [want] = opDef(kind).reference([{ dtype: 'float32', shape, data: Float64Array.from(x) }], {
    axes,
    keepDims: false,
  });
  return want!;
}

describe.skipIf(!addon && !required)('backend-native reductions', () => {
  it('match the reference along a contiguous axis of every length, tails included', () => {
    const rng = new Prng(41);
    const lengths = [...Array.from({ length: 41 }, (_, n) => n), 255, 1000, 4099];
    for (const n of lengths) {
      for (const [k, kind] of KINDS.entries()) {
        const outer = 3;
        // Products of many values overflow or vanish: keep their factors near 1.
        const x = Float32Array.from({ length: outer * n }, () =>
          kind === 'prod' ? 1 + rng.normal() / 64 : rng.normal() * 100,
        );
        const out = new Float32Array(outer);
        addon!.reduceF32(k, x, outer, n, 1, out);
        const want = reference(kind, x, [outer, n], [1]);
        const exact = kind === 'max' || kind === 'min';
        if (exact) expect(differing(out, want.data), `${kind} of ${n}`).toBe(0);
        else expect(compareToReference(out, want, Math.max(1, n)), `${kind} of ${n}`).toBeNull();
      }
    }
  });

  it('give NaN for a NaN in any lane, and the signed zero the reference gives', () => {
    const n = 37;
    for (let at = 0; at < n; at++) {
      const x = new Float32Array(n).fill(-5);
      x[at] = Number.NaN;
      for (const [k, kind] of KINDS.entries()) {
        const out = new Float32Array(1);
        addon!.reduceF32(k, x, 1, n, 1, out);
        expect(out[0], `${kind}, NaN at ${at}`).toBeNaN();
      }
      // Zeros of both signs, the +0 in lane `at`: max is +0 and min -0 wherever they are.
      const zeros = new Float32Array(n).fill(-0);
      zeros[at] = 0;
      const [max, min] = [new Float32Array(1), new Float32Array(1)];
      addon!.reduceF32(3, zeros, 1, n, 1, max);
      addon!.reduceF32(4, zeros, 1, n, 1, min);
      expect(Object.is(max[0], 0), `max, +0 at ${at}`).toBe(true);
      expect(Object.is(min[0], -0), `min, +0 at ${at}`).toBe(true);
      expect(differing(max, reference('max', zeros, [n], [0]).data)).toBe(0);
    }
  });

  it('match the reference down a strided axis, max and min bit for bit', () => {
    const rng = new Prng(42);
    const [outer, reduced, inner] = [2, 33, 21];
    const x = Float32Array.from({ length: outer * reduced * inner }, () =>
      rng.bool(0.02) ? rng.pick([Number.NaN, 0, -0]) : rng.normal(),
    );
    for (const [k, kind] of KINDS.entries()) {
      const out = new Float32Array(outer * inner);
      addon!.reduceF32(k, x, outer, reduced, inner, out);
      const want = reference(kind, x, [outer, reduced, inner], [1]);
      if (kind === 'max' || kind === 'min') expect(differing(out, want.data), kind).toBe(0);
      else expect(compareToReference(out, want, reduced), kind).toBeNull();
    }
  });
});
