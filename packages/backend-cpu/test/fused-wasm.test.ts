import { CpuDevice, simdKernels } from '@kiln/backend-cpu';
import { type DType, FUSIBLE_OPS, type FusibleOp, type HostArray, Prng, randomFusedProgram } from '@kiln/ir';
import { generateInput, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { WASM_FUSED_KERNELS } from '../src/kernels/fused.js';
import { WASM_FUSED_MIN } from '../src/wasm/fused-wasm.js';

/**
 * Fusion groups as WebAssembly SIMD loops (src/wasm/fused-wasm.ts) against the TypeScript fused
 * loop, bit for bit (any NaN equals any NaN: JavaScript keeps neither sign nor payload), on random
 * programs of every op the SIMD loop takes and values where ops disagree most (NaN, zeros of both
 * signs, infinities, halves), over several chunks and a length no multiple of four.
 */
const simd = new CpuDevice();
const typescript = new CpuDevice({ simd: false });

/** The ops the SIMD loop computes; programs of the others stay in the TypeScript loop. */
const SIMD_OPS = (Object.keys(FUSIBLE_OPS) as FusibleOp[]).filter(
  (op) => !['exp', 'log', 'tanh', 'sigmoid', 'sin', 'cos', 'pow', 'rsqrt'].includes(op),
);

const bits = (a: HostArray) => Array.from(a, (x) => (Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x));

/** Whether the SIMD table's kernel for a fused node over these inputs is the SIMD loop. */
function takesSimdLoop(
  inputs: readonly { dtype: DType; shape: number[] }[],
  attrs: object,
  shape: number[],
): boolean {
  const outputs = (attrs as { outputs: number[] }).outputs.map(() => ({ dtype: 'float32' as const, shape }));
  const kernel = simdKernels()!.fused!({ attrs: attrs as never, inputs, outputs });
  return WASM_FUSED_KERNELS.has(kernel);
}

describe('the WebAssembly SIMD fused loop', () => {
  it('computes the bits of the TypeScript loop on random programs of every op it takes', async () => {
    const rng = new Prng(29);
    const n = 2 * 4096 + 7; // two whole chunks and a tail no multiple of four
    let simdGroups = 0;
    for (let trial = 0; trial < 60; trial++) {
      // float32 inputs: whole arrays and a scalar; bools live inside the program only.
      const attrs = randomFusedProgram(rng, ['float32', 'float32', 'float32'], rng.int(1, 14), SIMD_OPS);
      const types = [
        { dtype: 'float32' as const, shape: [n] },
        { dtype: 'float32' as const, shape: [] },
        { dtype: 'float32' as const, shape: [n] },
      ];
      const sub = singleOpSubgraph('fused', types, attrs as unknown as Record<string, unknown>);
      const outputsFloat = sub.results.every((v) => sub.values[v]!.type.dtype === 'float32');
      if (!outputsFloat) continue; // a bool or int32 output: the TypeScript loop's
      const usesInt = attrs.program.some((s) => s[0] === 'cast' && s[2] === 'int32');
      expect(takesSimdLoop(types, attrs, [n])).toBe(!usesInt);
      if (usesInt) continue;
      simdGroups++;
      const data = types.map((t) =>
        Float32Array.from(
          generateInput(rng, {
            dtype: 'float32',
            shape: t.shape,
            domain: rng.bool(0.5) ? 'special' : 'normal',
          }).data,
        ),
      );
      const [want, got] = await Promise.all([
        runOnDevice(typescript, sub, data),
        runOnDevice(simd, sub, data),
      ]);
      for (const [k, w] of want.entries()) expect(bits(got[k]!), JSON.stringify(attrs)).toEqual(bits(w));
    }
    expect(simdGroups).toBeGreaterThan(20);
  });

  it('leaves to the TypeScript loop what it cannot compute exactly or read whole', () => {
    const f32 = (shape: number[]) => ({ dtype: 'float32' as const, shape });
    const chain = {
      program: [
        ['mul', [0, 1]],
        ['relu', [2]],
      ],
      outputs: [3],
    };
    const n = WASM_FUSED_MIN;
    expect(takesSimdLoop([f32([n]), f32([])], chain, [n])).toBe(true);
    // A transcendental step: the reference computes it in float64.
    expect(
      takesSimdLoop(
        [f32([n]), f32([])],
        {
          program: [
            ['mul', [0, 1]],
            ['exp', [2]],
          ],
          outputs: [3],
        },
        [n],
      ),
    ).toBe(false);
    // An input broadcast along rows, not a whole array or one value.
    expect(takesSimdLoop([f32([n / 32, 32]), f32([32])], chain, [n / 32, 32])).toBe(false);
    // Too small to pay for the copies.
    expect(takesSimdLoop([f32([n - 1]), f32([])], chain, [n - 1])).toBe(false);
    // A bool output.
    expect(takesSimdLoop([f32([n]), f32([])], { program: [['greater', [0, 1]]], outputs: [2] }, [n])).toBe(
      false,
    );
  });

  it('writes an output over the input it shares memory with', () => {
    const n = 3 * 4096 + 1;
    const types = [
      { dtype: 'float32' as const, shape: [n] },
      { dtype: 'float32' as const, shape: [] },
    ];
    const attrs = {
      program: [
        ['mul', [0, 1]],
        ['add', [2, 1]],
        ['relu', [3]],
      ],
      outputs: [4],
    };
    const kernel = simdKernels()!.fused!({ attrs: attrs as never, inputs: types, outputs: [types[0]!] });
    expect(WASM_FUSED_KERNELS.has(kernel)).toBe(true);
    const rng = new Prng(4);
    const x = Float32Array.from({ length: n }, () => rng.normal());
    const want = x.map((v) => Math.max(Math.fround(Math.fround(v * -0.75) + -0.75), 0));
    (kernel as (i: HostArray[], o: HostArray[]) => void)([x, Float32Array.of(-0.75)], [x]);
    expect(bits(x)).toEqual(bits(want));
  });
});
