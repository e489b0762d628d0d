import { CpuDevice } from '@kiln/backend-cpu';
import { type Device, EXECUTOR_OPS, isComposite, OP_NAMES, Prng } from '@kiln/ir';
import { formatReport, runConformance, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { differing } from './differing-bits.js';

/**
 * The native device against the float64 reference, with the kit every backend passes. CI
 * installs OpenBLAS and a compiler, so there the addon must be built (KILN_REQUIRE_NATIVE=1);
 * elsewhere a missing addon skips this suite with the reason it is missing.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native device's tests: ${unavailableReason}`);

describe.skipIf(!addon && !required)('backend-native', () => {
  it('is built where CI said it must be', () => {
    expect(unavailableReason).toBeUndefined();
  });

  it('runs tiny exactly rounded ops in JavaScript, with the bits the native loop gives', async () => {
    const device = new NativeDevice();
    const rng = new Prng(17);
    const values = Float32Array.from({ length: 40 }, () => rng.normal() * 1e3);
    values[3] = 0;
    values[5] = Number.NaN;
    values[7] = -0;
    const f32 = (n: number) => ({ dtype: 'float32', shape: [n] }) as const;
    for (const op of ['add', 'sub', 'mul', 'div', 'neg'] as const) {
      const arity = op === 'neg' ? 1 : 2;
      const run = async (n: number) => {
        const types = Array.from({ length: arity }, () => f32(n));
        const data = Array.from({ length: arity }, (_, i) => values.slice(i * 20, i * 20 + n));
        const [out] = await runOnDevice(device, singleOpSubgraph(op, types, {}), data);
        return new Uint32Array(Float32Array.from(out! as Float32Array).buffer);
      };
      // 12 elements run in JavaScript, 20 in the native loop: the first 12 must agree bit for bit.
      expect(Array.from(await run(12)), op).toEqual(Array.from((await run(20)).subarray(0, 12)));
    }
  });

  it('passes the conformance kit: every primitive, against the float64 reference', async () => {
    const report = await runConformance(new NativeDevice());
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    expect(report.unsupported.filter((u) => !isComposite(u.op))).toEqual([]);
    expect(report.cases).toBeGreaterThan(
      OP_NAMES.filter((op) => !EXECUTOR_OPS.has(op) && !isComposite(op)).length * 4,
    );
  });

  it('multiplies batched and transposed matrices as the reference does, in float32', async () => {
    const rng = new Prng(3);
    const device = new NativeDevice();
    const av = Float32Array.from({ length: 2 * 3 * 40 * 30 }, () => rng.normal());
    const bv = Float32Array.from({ length: 3 * 50 * 40 }, () => rng.normal());
    const sub = singleOpSubgraph(
      'matmul',
      [
        { dtype: 'float32', shape: [2, 3, 40, 30] },
        { dtype: 'float32', shape: [3, 50, 40] },
      ],
      { transposeA: true, transposeB: true },
    );
    const [data] = await runOnDevice(device, sub, [av, bv]);
    const got = { shape: sub.values[sub.results[0]!]!.type.shape, data: data! };
    expect(got.shape).toEqual([2, 3, 30, 50]);
    // C[p, q, i, j] = sum_k A[p, q, k, i] B[q, j, k], in float64.
    for (const [p, q, i, j] of [
      [0, 0, 0, 0],
      [1, 2, 29, 49],
      [1, 1, 7, 13],
    ] as const) {
      let want = 0;
      for (let k = 0; k < 40; k++) want += av[((p * 3 + q) * 40 + k) * 30 + i]! * bv[(q * 50 + j) * 40 + k]!;
      expect(got.data[((p * 3 + q) * 30 + i) * 50 + j]).toBeCloseTo(want, 3);
    }
  });

  it('refuses arrays that do not fit, naming the argument, and keeps running', () => {
    const a = new Float32Array(4);
    const offsets = Int32Array.of(0);
    expect(() =>
      addon!.sgemmBatched(false, false, 2, 2, 2, a, a, new Float32Array(3), offsets, offsets, offsets),
    ).toThrow('sgemmBatched: a batch lies outside its array');
    const shape = Float64Array.of(4);
    const add = Int32Array.of(32, 0, 1, -1);
    const slot = Int32Array.of(2);
    const strides = Float64Array.of(1, 1);
    const program = addon!.createProgram(add, 2, strides, shape, slot);
    // Strides that reach past an input's end, a step reading a slot computed after it, an op
    // that does not exist, an output of the wrong length, a handle of another kind, a reduction
    // that does not fit.
    expect(() => addon!.runProgram(program, [a, new Float32Array(3)], [a], 1)).toThrow(
      "runProgram: an input's strides reach past its end",
    );
    expect(() => addon!.createProgram(Int32Array.of(32, 0, 2, -1), 2, strides, shape, slot)).toThrow(
      'createProgram: a step reads a slot not computed before it',
    );
    expect(() => addon!.createProgram(Int32Array.of(99, 0, 1, -1), 2, strides, shape, slot)).toThrow(
      'createProgram: unknown op',
    );
    expect(() => addon!.runProgram(program, [a, a], [new Float32Array(5)], 1)).toThrow(
      "runProgram: an output's length is not the shape's size",
    );
    expect(() => addon!.runProgram(program, [a], [a], 1)).toThrow(
      "runProgram: not the program's count of inputs",
    );
    const conv = addon!.createConv(0, Float64Array.of(1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0));
    expect(() => addon!.runProgram(conv, [a, a], [a], 1)).toThrow(
      'runProgram: a program made by createProgram',
    );
    expect(() => addon!.runConv(program, a, a, a, 4, 4, 4, 1)).toThrow('runConv: a convolution handle');
    expect(() => addon!.reduceF32(0, a, 2, 3, 1, new Float32Array(2))).toThrow(
      'reduceF32: lengths do not match [outer, reduced, inner]',
    );
    // And it goes on: 4 elements plus one broadcast value.
    const out = new Float32Array(4);
    addon!.runProgram(
      addon!.createProgram(add, 2, Float64Array.of(1, 0), shape, slot),
      [Float32Array.of(1, 2, 3, 4), Float32Array.of(10)],
      [out],
      1,
    );
    expect(Array.from(out)).toEqual([11, 12, 13, 14]);
  });

  it('splits a large program between threads, with the bits of one thread and of the CPU device', async () => {
    // 1031 x 1033 values (over the size programs are split at), cut between threads in mid-row;
    // a scale per row and a bias per column, each read through its broadcast strides.
    const [rows, cols] = [1031, 1033];
    const rng = new Prng(23);
    const data = [rows * cols, rows, cols].map((n) => Float32Array.from({ length: n }, () => rng.normal()));
    const types = [
      { dtype: 'float32', shape: [rows, cols] },
      { dtype: 'float32', shape: [rows, 1] },
      { dtype: 'float32', shape: [cols] },
    ] as const;
    const program = {
      program: [
        ['mul', [0, 1]],
        ['add', [3, 2]],
        ['relu', [4]],
        ['sub', [5, 0]],
      ],
      outputs: [5, 6],
    };
    const run = (device: Device) => runOnDevice(device, singleOpSubgraph('fused', [...types], program), data);
    // How many values of the two outputs differ in their bits (a million each).
    const against = async (device: Device) => {
      const [want, got] = [two, await run(device)];
      return want.reduce((n, out, k) => n + differing(out, got[k]!), 0);
    };
    const two = await run(new NativeDevice({ threads: 2 }));
    expect(await against(new NativeDevice({ threads: 1 }))).toBe(0);
    expect(await against(new CpuDevice())).toBe(0);
  });

  it('runs fusion groups as native programs, and declines those with int32 values', () => {
    const device = new NativeDevice();
    const float = { dtype: 'float32', shape: [8, 3] } as const;
    const program = {
      program: [
        ['mul', [0, 1]],
        ['relu', [2]],
        ['less', [3, 1]],
        ['where', [4, 3, 0]],
      ],
      outputs: [5],
    };
    expect(
      device.supports({ op: 'fused', attrs: program, inputs: [float, float], outputs: [float] }).ok,
    ).toBe(true);
    const int = { dtype: 'int32', shape: [8, 3] } as const;
    const support = device.supports({
      op: 'fused',
      attrs: { program: [['add', [0, 1]]], outputs: [2] },
      inputs: [int, int],
      outputs: [int],
    });
    expect(support.ok).toBe(false);
    expect(support.ok ? '' : support.reason).toMatch(/int32/);
  });
});
