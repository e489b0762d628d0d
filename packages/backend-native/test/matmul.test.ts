import { opDef, Prng } from '@kiln/ir';
import { compareToReference, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { ONEDNN_MATMUL_FLOPS } from '../src/matmul.js';
import { differing } from './differing-bits.js';

/**
 * matmul's oneDNN path (native/matmul.cc): products of ONEDNN_MATMUL_FLOPS or more, larger than
 * the conformance kit's cases, with every transpose, broadcast batches and operands of different
 * ranks, against the float64 reference at the kit's tolerance.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native matmul tests: ${unavailableReason}`);

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
/** The shape stored for an operand that the op reads transposed (its last two dimensions swapped). */
const stored = (shape: readonly number[], transposed: boolean) =>
  transposed ? [...shape.slice(0, -2), shape.at(-1)!, shape.at(-2)!] : [...shape];

describe.skipIf(!addon && !required)('backend-native matmul on oneDNN', () => {
  const cases = [
    // [a as the op reads it, b as the op reads it]
    { a: [96, 200], b: [200, 130] },
    { a: [3, 1, 64, 96], b: [1, 4, 96, 80] },
    { a: [5, 64, 96], b: [96, 128] },
    { a: [64, 96], b: [2, 96, 128] },
  ];

  it('matches the float64 reference with every transpose and broadcast', async () => {
    const device = new NativeDevice({ threads: 1 });
    const rng = new Prng(21);
    for (const { a, b } of cases) {
      for (const [transposeA, transposeB] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const [sa, sb] = [stored(a, transposeA), stored(b, transposeB)];
        const types = [
          { dtype: 'float32', shape: sa },
          { dtype: 'float32', shape: sb },
        ] as const;
        const sub = singleOpSubgraph('matmul', types, { transposeA, transposeB });
        const out = sub.values[sub.results[0]!]!.type.shape as number[];
        const k = a.at(-1)!;
        expect(2 * size(out) * k).toBeGreaterThanOrEqual(ONEDNN_MATMUL_FLOPS);
        // The oneDNN primitive is made for this case, not left to the OpenBLAS fallback.
        expect(
          addon!.createMatmul(
            Float64Array.from(sa),
            Float64Array.from(sb),
            Float64Array.from(out),
            transposeA,
            transposeB,
          ),
        ).toBeTypeOf('object');
        const x = Float32Array.from({ length: size(sa) }, () => rng.normal());
        const y = Float32Array.from({ length: size(sb) }, () => rng.normal());
        const [got] = await runOnDevice(device, sub, [x, y]);
        const [want] = opDef('matmul').reference(
          [
            { dtype: 'float32', shape: sa, data: Float64Array.from(x) },
            { dtype: 'float32', shape: sb, data: Float64Array.from(y) },
          ],
          { transposeA, transposeB },
        );
        expect(
          compareToReference(got!, want!, k),
          `${sa} x ${sb}, transposes ${transposeA} ${transposeB}`,
        ).toBeNull();
      }
    }
  });

  it('gives the bits of a synchronous run off the JavaScript thread', async () => {
    const [sa, sb, so] = [
      [256, 512],
      [512, 384],
      [256, 384],
    ];
    const primitive = addon!.createMatmul(
      Float64Array.from(sa),
      Float64Array.from(sb),
      Float64Array.from(so),
      false,
      false,
    );
    const rng = new Prng(22);
    const x = Float32Array.from({ length: size(sa) }, () => rng.normal());
    const y = Float32Array.from({ length: size(sb) }, () => rng.normal());
    const [here, there] = [new Float32Array(size(so)), new Float32Array(size(so))];
    addon!.runMatmul(primitive, x, y, null, here, 1);
    await addon!.runMatmul(primitive, x, y, null, there, 1, true);
    expect(differing(here, there)).toBe(0);
    expect(here.some((v) => v !== 0)).toBe(true);
  });

  it('refuses shapes that do not agree and arrays of the wrong length', () => {
    const shape = (...dims: number[]) => Float64Array.from(dims);
    expect(() => addon!.createMatmul(shape(4, 5), shape(6, 7), shape(4, 7), false, false)).toThrow(
      /do not agree/,
    );
    expect(() => addon!.createMatmul(shape(5), shape(5, 7), shape(7), false, false)).toThrow(
      /rank 2 or more/,
    );
    expect(() => addon!.createMatmul(shape(4, 5.5), shape(5, 7), shape(4, 7), false, false)).toThrow(
      /whole numbers/,
    );
    const primitive = addon!.createMatmul(shape(4, 5), shape(5, 7), shape(4, 7), false, false);
    const [a, b] = [new Float32Array(20), new Float32Array(35)];
    expect(() => addon!.runMatmul(primitive, a, b, null, new Float32Array(27), 1)).toThrow(
      /does not match the product/,
    );
    expect(() => addon!.runMatmul({}, a, b, null, new Float32Array(28), 1)).toThrow(/a matmul handle/);
  });
});
