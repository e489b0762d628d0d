import { type FusedStep, opDef, Prng } from '@kiln/ir';
import { compareToReference, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { splitBias } from '../src/fused-matmul.js';
import { GROUP_ELEMENTS } from '../src/groups.js';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { matmulLibrary } from '../src/matmul.js';
import { OFF_THREAD_FLOPS } from '../src/threading.js';
import { differing } from './differing-bits.js';

/**
 * fusedMatmul on the native device (src/fused-matmul.ts): oneDNN's product with the bias as its own
 * argument and the rest of the epilogue as a native pass in place, on products larger than the
 * conformance kit's (which run on OpenBLAS), against the float64 reference at the kit's tolerance,
 * with NaN and infinities in the epilogue's inputs.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native fusedMatmul tests: ${unavailableReason}`);

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const SPECIAL = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 3e38, -3e38];

interface Case {
  readonly a: number[];
  readonly b: number[];
  readonly others: number[][];
  readonly program: FusedStep[];
  readonly transposeB?: boolean;
  /** Whether oneDNN adds the bias (the epilogue starts with a row added to the product). */
  readonly bias: boolean;
}

// The product is slot 0, the other inputs slots 1, 2, ...; then the steps.
const cases: Case[] = [
  // Dense layers: bias and relu; the bias on the left and tanh; a bias alone (no pass after it).
  {
    a: [64, 96],
    b: [96, 128],
    others: [[128]],
    program: [
      ['add', [0, 1]],
      ['relu', [2]],
    ],
    bias: true,
  },
  {
    a: [64, 96],
    b: [128, 96],
    others: [[1, 128]],
    program: [
      ['add', [1, 0]],
      ['tanh', [2]],
    ],
    bias: true,
    transposeB: true,
  },
  { a: [64, 96], b: [96, 128], others: [[128]], program: [['add', [0, 1]]], bias: true },
  // The bias read again later, and a scalar.
  {
    a: [64, 96],
    b: [96, 128],
    others: [[128], []],
    program: [
      ['add', [0, 1]],
      ['sigmoid', [3]],
      ['mul', [4, 1]],
      ['sub', [5, 2]],
    ],
    bias: true,
  },
  // Batches, the bias broadcast over them.
  {
    a: [3, 32, 64],
    b: [64, 96],
    others: [[96]],
    program: [
      ['add', [0, 1]],
      ['relu', [2]],
    ],
    bias: true,
  },
  // No bias: a whole tensor, a column, an epilogue that reads the bare product twice.
  {
    a: [64, 96],
    b: [96, 128],
    others: [[64, 128]],
    program: [
      ['mul', [0, 1]],
      ['relu', [2]],
    ],
    bias: false,
  },
  {
    a: [64, 96],
    b: [96, 128],
    others: [[64, 1]],
    program: [
      ['add', [0, 1]],
      ['relu', [2]],
    ],
    bias: false,
  },
  {
    a: [64, 96],
    b: [96, 128],
    others: [[128]],
    program: [
      ['add', [0, 1]],
      ['mul', [2, 0]],
    ],
    bias: false,
  },
];

async function check(device: NativeDevice, c: Case, rng: Prng) {
  const transposeB = c.transposeB ?? false;
  const types = [c.a, c.b, ...c.others].map((shape) => ({ dtype: 'float32' as const, shape }));
  const attrs = { transposeA: false, transposeB, program: c.program };
  const sub = singleOpSubgraph('fusedMatmul', types, attrs);
  const out = sub.values[sub.results[0]!]!.type.shape as number[];
  expect(
    device.supports({ op: 'fusedMatmul', attrs, inputs: types, outputs: [{ dtype: 'float32', shape: out }] })
      .ok,
  ).toBe(true);
  const inputs = types.map((t, i) =>
    Float32Array.from({ length: size(t.shape) }, () =>
      i >= 2 && rng.bool(0.1) ? rng.pick(SPECIAL) : rng.normal(),
    ),
  );
  inputs[2]![0] = Number.NaN;
  const [got] = await runOnDevice(device, sub, inputs);
  const [want] = opDef('fusedMatmul').reference(
    inputs.map((data, i) => ({ dtype: 'float32', shape: types[i]!.shape, data: Float64Array.from(data) })),
    attrs,
  );
  const factor = opDef('fusedMatmul').tolerance!(types, attrs);
  expect(compareToReference(got!, want!, factor), JSON.stringify(c.program)).toBeNull();
  expect(want!.data.some(Number.isNaN), 'NaN reaches the epilogue').toBe(true);
  return { out, transposeB };
}

describe.skipIf(!addon && !required)('backend-native fusedMatmul', () => {
  it('matches the float64 reference, with oneDNN adding the bias where the epilogue starts with one', async () => {
    const device = new NativeDevice({ threads: 1, codegen: false });
    const rng = new Prng(31);
    for (const c of cases) {
      const { out, transposeB } = await check(device, c, rng);
      expect(matmulLibrary(addon!, 2 * size(out) * c.a.at(-1)!)).toBe('onednn');
      const split = splitBias(c.program, c.others, out.at(-1)!);
      expect(split !== undefined, JSON.stringify(c.program)).toBe(c.bias);
      if (split) {
        // oneDNN makes a primitive with this bias: the case does not fall back to a separate pass.
        const primitive = addon!.createMatmul(
          Float64Array.from(c.a),
          Float64Array.from(c.b),
          Float64Array.from(out),
          false,
          transposeB,
          Float64Array.from(c.others[split.bias]!),
        );
        expect(primitive).toBeTypeOf('object');
      }
    }
  });

  it('runs the epilogue after the bias through a generated loop, in place', async () => {
    const device = new NativeDevice({ threads: 1 });
    const c: Case = {
      a: [256, 64],
      b: [64, 512],
      others: [[512], []],
      program: [
        ['add', [0, 1]],
        ['relu', [3]],
        ['mul', [4, 2]],
      ],
      bias: true,
    };
    expect(256 * 512).toBeGreaterThanOrEqual(GROUP_ELEMENTS);
    const rng = new Prng(33);
    await check(device, c, rng);
    const { attached, stopped } = await device.groupsSettled();
    expect(stopped).toBeUndefined();
    expect(attached).toBeGreaterThanOrEqual(1);
    await check(device, c, rng);
  });

  it('gives the bits of a synchronous run off the JavaScript thread', async () => {
    const [m, k, n] = [128, 256, 192];
    const primitive = addon!.createMatmul(
      Float64Array.from([m, k]),
      Float64Array.from([k, n]),
      Float64Array.from([m, n]),
      false,
      false,
      Float64Array.from([n]),
    );
    const rng = new Prng(32);
    const [x, y, bias] = [m * k, k * n, n].map((len) =>
      Float32Array.from({ length: len }, () => rng.normal()),
    );
    const [here, there] = [new Float32Array(m * n), new Float32Array(m * n)];
    addon!.runMatmul(primitive, x!, y!, bias!, here, 1);
    await addon!.runMatmul(primitive, x!, y!, bias!, there, 1, true);
    expect(differing(here, there)).toBe(0);
    const plain = new Float32Array(m * n);
    addon!.runMatmul(
      addon!.createMatmul(
        Float64Array.from([m, k]),
        Float64Array.from([k, n]),
        Float64Array.from([m, n]),
        false,
        false,
      ),
      x!,
      y!,
      null,
      plain,
      1,
    );
    // The bias is there: each element is the bare product plus its column's bias, to rounding.
    expect(Math.abs(here[n + 5]! - (plain[n + 5]! + bias![5]!))).toBeLessThan(1e-4);
  });

  it('leaves the JavaScript thread for a large product and its epilogue, with the same bits', async () => {
    // 2^30 flops: the product runs on the kernel thread in an asynchronous run, then the epilogue.
    const [m, k, n] = [1024, 512, 1024];
    expect(2 * m * k * n).toBeGreaterThanOrEqual(OFF_THREAD_FLOPS);
    const rng = new Prng(34);
    const types = [[m, k], [k, n], [n], []].map((shape) => ({ dtype: 'float32' as const, shape }));
    const inputs = types.map((t) => Float32Array.from({ length: size(t.shape) }, () => rng.normal()));
    const programs: FusedStep[][] = [
      [
        ['add', [0, 1]],
        ['relu', [3]],
        ['mul', [4, 2]],
      ],
      // No bias: the bare product, then the whole epilogue.
      [
        ['mul', [0, 2]],
        ['add', [3, 1]],
      ],
    ];
    for (const program of programs) {
      const sub = singleOpSubgraph('fusedMatmul', types, { transposeA: false, transposeB: false, program });
      const [off] = await runOnDevice(new NativeDevice({ threads: 1 }), sub, inputs);
      const [on] = await runOnDevice(new NativeDevice({ threads: 1, offThread: false }), sub, inputs);
      expect(differing(off!, on!), JSON.stringify(program)).toBe(0);
      // One element against a float64 dot product, to rounding.
      const [i, j] = [517, 301];
      let dot = 0;
      for (let p = 0; p < k; p++) dot += inputs[0]![i * k + p]! * inputs[1]![p * n + j]!;
      const [bias, scale] = [inputs[2]![j]!, inputs[3]![0]!];
      const want = program.length === 3 ? Math.max(dot + bias, 0) * scale : dot * scale + bias;
      expect(Math.abs(off![i * n + j]! - want)).toBeLessThan(1e-3);
    }
  });

  it('refuses a bias that is not a row and arrays of the wrong length', () => {
    const dims = (...d: number[]) => Float64Array.from(d);
    const make = (bias: Float64Array) =>
      addon!.createMatmul(dims(4, 5), dims(5, 7), dims(4, 7), false, false, bias);
    expect(() => make(dims(4, 1))).toThrow(/a row of the output's width/);
    expect(() => make(dims(5))).toThrow(/a row of the output's width/);
    expect(() => make(dims(2, 7))).toThrow(/a row of the output's width/);
    const primitive = make(dims(1, 7));
    const [a, b, out] = [new Float32Array(20), new Float32Array(35), new Float32Array(28)];
    expect(() => addon!.runMatmul(primitive, a, b, null, out, 1)).toThrow(/does not match the product/);
    expect(() => addon!.runMatmul(primitive, a, b, new Float32Array(6), out, 1)).toThrow(
      /does not match the product/,
    );
    expect(() => addon!.runMatmul(primitive, a, b, [] as never, out, 1)).toThrow(/bias one or null/);
    addon!.runMatmul(primitive, a, b, new Float32Array(7).fill(2), out, 1);
    expect([...out]).toEqual(new Array(28).fill(2));
  });

  it('declines an epilogue whose result is not float32, and computes it where compiled anyway', async () => {
    const device = new NativeDevice({ threads: 1 });
    const types = [[64, 96], [96, 128], [128]].map((shape) => ({ dtype: 'float32' as const, shape }));
    const attrs = {
      transposeA: false,
      transposeB: false,
      program: [['greater', [0, 1]]] as FusedStep[],
    };
    const support = device.supports({
      op: 'fusedMatmul',
      attrs,
      inputs: types,
      outputs: [{ dtype: 'bool', shape: [64, 128] }],
    });
    expect(support.ok ? '' : support.reason).toMatch(/runs in place over float32/);
    // The product cannot be stored where a bool result goes: the kernel computes it another way.
    const rng = new Prng(35);
    const inputs = types.map((t) => Float32Array.from({ length: size(t.shape) }, () => rng.normal()));
    const [got] = await runOnDevice(device, singleOpSubgraph('fusedMatmul', types, attrs), inputs);
    const [want] = opDef('fusedMatmul').reference(
      inputs.map((data, i) => ({ dtype: 'float32', shape: types[i]!.shape, data: Float64Array.from(data) })),
      attrs,
    );
    expect(Array.from(got!)).toEqual(Array.from(want!.data));
  });

  it('splits a leading bias off the program and renumbers the rest', () => {
    // relu(p + b) * s - b: the sum takes slot 0, the rest move one slot down.
    expect(
      splitBias(
        [
          ['add', [1, 0]],
          ['relu', [3]],
          ['mul', [4, 2]],
          ['sub', [5, 1]],
        ],
        [[1, 8], []],
        8,
      ),
    ).toEqual({
      bias: 0,
      rest: [
        ['relu', [0]],
        ['mul', [3, 2]],
        ['sub', [4, 1]],
      ],
    });
    expect(splitBias([['add', [0, 1]]], [[8, 8]], 8)).toBeUndefined(); // not a row
    expect(splitBias([['add', [0, 1]]], [[4]], 8)).toBeUndefined(); // not the output's width
    expect(splitBias([['mul', [0, 1]]], [[8]], 8)).toBeUndefined(); // not an add
    expect(splitBias([['add', [1, 2]]], [[8], [8]], 8)).toBeUndefined(); // not the product
  });
});
