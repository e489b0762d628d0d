import { CpuDevice } from '@kiln/backend-cpu';
import { OPS, Prng, refTensor } from '@kiln/ir';
import { compareToReference, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

/**
 * The conformance kit's matmuls are small; these shapes cross every blocking boundary of the
 * cache-blocked kernels (MC = 64 rows, KC = 256 depth, NC = 512 columns; 4x4 tiles in TypeScript,
 * 4x8 in WebAssembly SIMD) with ragged edges, in every transpose combination, with broadcast batch
 * dimensions, on both.
 */
const DEVICES = [
  ['WebAssembly SIMD', new CpuDevice({ name: 'cpu:simd' })],
  ['TypeScript', new CpuDevice({ name: 'cpu:ts', simd: false })],
] as const;

async function check(
  device: CpuDevice,
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
) {
  const rng = new Prng(aShape.length * 1000 + bShape[0]!);
  const fill = (shape: number[]) =>
    refTensor(
      'float32',
      shape,
      Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rng.normal()),
    );
  const a = fill(aShape);
  const b = fill(bShape);
  const attrs = { transposeA, transposeB };
  const want = OPS.matmul.reference([a, b], attrs)[0]!;
  const sub = singleOpSubgraph('matmul', [a, b], attrs);
  const [got] = await runOnDevice(device, sub, [Float32Array.from(a.data), Float32Array.from(b.data)]);
  const k = transposeA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
  expect(compareToReference(got!, want, k)).toBeNull();
}

describe.each(DEVICES)('backend-cpu blocked matmul (%s)', (_, device) => {
  it.each([
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])('matches the reference across block edges (transposeA=%s, transposeB=%s)', async (ta, tb) => {
    const [m, k, n] = [67, 259, 517];
    await check(device, ta ? [k, m] : [m, k], tb ? [n, k] : [k, n], ta, tb);
  });

  it('broadcasts batch dimensions', async () => {
    await check(device, [3, 1, 9, 70], [2, 70, 5], false, false);
  });

  it('handles a product of one row, one column, depth one and depth zero', async () => {
    await check(device, [5, 1], [1, 9], false, false);
    await check(device, [9, 300], [300, 1], false, false);
    // Depth zero: every entry an empty sum, 0 (recycled memory must not show through).
    await check(device, [6, 0], [0, 7], false, false);
  });
});
