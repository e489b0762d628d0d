import { opDef, Prng } from '@kiln/ir';
import { runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { differing } from './differing-bits.js';

/**
 * The native softmax kernel (native/softmax.cc) on lanes long enough for its vector loops and
 * their tails, against the float64 reference, tighter than the conformance kit asks: its
 * exponential is a polynomial of its own, and the kit's cases are small.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native softmax tests: ${unavailableReason}`);

/** A float32's position on the number line, so that neighbours differ by 1 (ulps apart). */
function ordered(v: number): number {
  const bits = new Int32Array(Float32Array.of(v).buffer)[0]!;
  return bits < 0 ? -(bits & 0x7fffffff) : bits;
}

/** Logits of every kind a lane can hold, lane by lane along `axis` of `shape`. */
function logits(shape: readonly number[], rng: Prng): Float32Array {
  const x = Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal() * 8);
  // Spread over 200 (results down to subnormals and zeros), -inf entries, a NaN, an +inf, a lane
  // of -inf: put at fixed positions, so most lanes hold one and some hold several.
  for (let i = 0; i < x.length; i += 97) x[i] = -200 * rng.next();
  for (let i = 5; i < x.length; i += 211) x[i] = Number.NEGATIVE_INFINITY;
  x[x.length >> 1] = Number.NaN;
  x[x.length - 3] = Number.POSITIVE_INFINITY;
  return x;
}

describe.skipIf(!addon && !required)('backend-native softmax', () => {
  const cases = [
    { shape: [37, 1000], axis: -1 },
    { shape: [3, 300, 17], axis: 1 },
    { shape: [129, 4, 5], axis: 0 },
    { shape: [2, 2053], axis: 1 },
  ];
  for (const op of ['softmax', 'logSoftmax'] as const) {
    it(`${op}: within 4 ulp of the float64 reference, or 5e-7 where logSoftmax is near 0`, async () => {
      const device = new NativeDevice({ threads: 1 });
      const rng = new Prng(11);
      for (const { shape, axis } of cases) {
        const x = logits(shape, rng);
        const type = { dtype: 'float32', shape } as const;
        const [got] = await runOnDevice(device, singleOpSubgraph(op, [type], { axis }), [x]);
        const [want] = opDef(op).reference([{ dtype: 'float32', shape, data: Float64Array.from(x) }], {
          axis,
        });
        let worst = 0;
        for (let i = 0; i < x.length; i++) {
          const [g, w] = [got![i]!, want!.data[i]!];
          if (!Number.isFinite(w)) {
            expect(
              Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)),
              `${op} ${shape} [${i}]: ${g} for ${w}`,
            ).toBe(true);
            continue;
          }
          // logSoftmax subtracts log(sum) from each value: near 0 its error is absolute.
          const ok =
            Math.abs(ordered(g) - ordered(w)) <= 4 || (op === 'logSoftmax' && Math.abs(g - w) <= 5e-7);
          if (!ok) expect.fail(`${op} ${shape} axis ${axis} [${i}]: got ${g}, expected ${w}`);
          worst = Math.max(worst, Math.abs(ordered(g) - ordered(w)));
        }
        console.log(`${op} ${shape} along ${axis}: at most ${worst} ulp from the reference`);
      }
    });
  }

  it('splits large inputs between threads with the bits of one thread, on and off the kernel thread', async () => {
    const rng = new Prng(12);
    for (const { shape, axis } of [
      { shape: [2048, 700], axis: -1 },
      { shape: [64, 100, 200], axis: 1 },
    ]) {
      const x = logits(shape, rng);
      const sub = singleOpSubgraph('softmax', [{ dtype: 'float32', shape }], { axis });
      const [one] = await runOnDevice(new NativeDevice({ threads: 1, offThread: false }), sub, [x]);
      const [two] = await runOnDevice(new NativeDevice({ threads: 2, offThread: false }), sub, [x]);
      expect(differing(one!, two!)).toBe(0);
      const queued = new Float32Array(x.length);
      const [outer, n, inner] = axis === 1 ? [64, 100, 200] : [2048, 700, 1];
      await addon!.softmaxF32(x, outer, n, inner, false, queued, 2, true);
      expect(differing(one!, queued)).toBe(0);
    }
  });

  it('refuses arrays that do not match the sizes it is given', () => {
    const x = new Float32Array(12);
    expect(() => addon!.softmaxF32(x, 3, 4, 2, false, new Float32Array(12), 1)).toThrow(
      /lengths do not match/,
    );
    expect(() => addon!.softmaxF32(x, 3, 4, 1, false, new Float32Array(11), 1)).toThrow(
      /lengths do not match/,
    );
    expect(() => addon!.softmaxF32(x, -3, -4, 1, false, x, 1)).toThrow(/sizes must be >= 0/);
  });
});
