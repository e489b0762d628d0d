import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuDevice } from '@kiln/backend-cpu';
import { type DType, type HostArray, Prng } from '@kiln/ir';
import { runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { groupSource } from '../src/codegen.js';
import { GroupCompiler } from '../src/group-compiler.js';
import { GROUP_ELEMENTS } from '../src/groups.js';
import { addon, NativeDevice } from '../src/index.js';

/**
 * Fusion groups as generated loops (src/codegen.ts), compiled by the machine's C compiler: the
 * same values as the interpreter gives, on every op and the values where ops disagree most
 * (NaN, zeros of both signs, infinities, halves, denormals), on every way an input is read.
 * Every compile here goes to a cache folder of this file's own, so nothing is found from an
 * earlier run.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
const folders: string[] = [];
const freshFolder = () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-codegen-test-'));
  folders.push(dir);
  return dir;
};
// Read when this file's first device makes the process's compiler.
process.env.KILN_NATIVE_CACHE = freshFolder();
afterAll(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

/** Same values, where any NaN equals any NaN (JavaScript keeps no NaN's sign or payload). */
function mismatches(want: HostArray, got: HostArray): number {
  const [p, q] = [want, got].map((v) => new Uint32Array(Float32Array.from(v as ArrayLike<number>).buffer));
  if (p!.length !== q!.length) return Math.max(p!.length, q!.length);
  let count = 0;
  for (let i = 0; i < p!.length; i++) {
    const nan = Number.isNaN(want[i] as number) && Number.isNaN(got[i] as number);
    if (!nan && p![i] !== q![i]) count++;
  }
  return count;
}

const FLOAT_UNARY = [
  'neg',
  'abs',
  'sign',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'square',
  'reciprocal',
  'tanh',
  'sigmoid',
  'relu',
  'sin',
  'cos',
  'floor',
  'ceil',
  'round',
];
const FLOAT_BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];
const COMPARE = ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'];
const LOGICAL = ['logicalAnd', 'logicalOr', 'logicalXor'];

type Step = [string, number[]] | ['cast', number[], DType];

/**
 * A program using every op the native programs hold, each on slots of the types it takes, picked
 * at random from those computed so far; its outputs are some of each type.
 */
function everyOpProgram(rng: Prng, inputs: readonly DType[]): { program: Step[]; outputs: number[] } {
  const types: DType[] = [...inputs];
  const pick = (dtype: DType) => rng.pick(types.flatMap((t, i) => (t === dtype ? [i] : [])));
  const ops = [
    ...FLOAT_UNARY,
    ...FLOAT_BINARY,
    ...COMPARE,
    ...LOGICAL,
    'isNaN',
    'logicalNot',
    'where',
    'castToFloat',
    'castToBool',
  ];
  const program: Step[] = [];
  for (let round = 0; round < 2; round++) {
    for (let i = ops.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [ops[i], ops[j]] = [ops[j]!, ops[i]!];
    }
    for (const op of ops) {
      let step: Step;
      let out: DType = 'float32';
      if (FLOAT_UNARY.includes(op)) step = [op, [pick('float32')]];
      else if (FLOAT_BINARY.includes(op)) step = [op, [pick('float32'), pick('float32')]];
      else if (COMPARE.includes(op)) [step, out] = [[op, [pick('float32'), pick('float32')]], 'bool'];
      else if (LOGICAL.includes(op)) [step, out] = [[op, [pick('bool'), pick('bool')]], 'bool'];
      else if (op === 'isNaN') [step, out] = [[op, [pick('float32')]], 'bool'];
      else if (op === 'logicalNot') [step, out] = [[op, [pick('bool')]], 'bool'];
      else if (op === 'where') step = [op, [pick('bool'), pick('float32'), pick('float32')]];
      else if (op === 'castToFloat') step = ['cast', [pick('bool')], 'float32'];
      else [step, out] = [['cast', [pick('float32')], 'bool'], 'bool'];
      program.push(step);
      types.push(out);
    }
  }
  const steps = types.map((t, i) => ({ t, i })).filter(({ i }) => i >= inputs.length);
  const last = (dtype: DType) => steps.filter(({ t }) => t === dtype).at(-1)!.i;
  const middle = steps[Math.floor(steps.length / 2)]!.i;
  return { program, outputs: [...new Set([last('float32'), last('bool'), middle])] };
}

/** Values where ops disagree most, among normal ones. */
function awkwardValues(rng: Prng, n: number): Float32Array {
  const special = [
    Number.NaN,
    0,
    -0,
    Infinity,
    -Infinity,
    1,
    -1,
    0.5,
    -0.5,
    1.5,
    2.5,
    -2.5,
    1e-40,
    1e30,
    -1e30,
  ];
  return Float32Array.from({ length: n }, (_, i) =>
    i % 7 === 3 ? special[(i >> 3) % special.length]! : rng.normal() * 3,
  );
}

describe.skipIf(!addon && !required)('generated group loops', () => {
  it('give the interpreter values for every op, on inputs read along the row, per row and as one value', async () => {
    const [rows, cols] = [67, 1031]; // odd, so rows end mid-vector; over GROUP_ELEMENTS in all
    expect(rows * cols).toBeGreaterThanOrEqual(GROUP_ELEMENTS);
    const rng = new Prng(5);
    const types = [
      { dtype: 'float32', shape: [rows, cols] }, // along the row
      { dtype: 'float32', shape: [rows, cols] },
      { dtype: 'float32', shape: [] }, // one value for everything
      { dtype: 'float32', shape: [rows, 1] }, // one value per row
      { dtype: 'float32', shape: [cols] }, // along the row, the same for every row
      { dtype: 'bool', shape: [rows, cols] },
      { dtype: 'bool', shape: [rows, 1] },
    ] as const;
    const data = types.map(({ dtype, shape }) => {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      return dtype === 'bool'
        ? Uint8Array.from({ length: n }, () => (rng.bool() ? 1 : 0))
        : awkwardValues(rng, n);
    });
    for (let trial = 0; trial < 3; trial++) {
      const attrs = everyOpProgram(
        rng,
        types.map((t) => t.dtype),
      );
      const graph = singleOpSubgraph('fused', [...types], attrs);
      const want = await runOnDevice(new NativeDevice({ codegen: false }), graph, data);
      const device = new NativeDevice();
      const first = await runOnDevice(device, graph, data); // likely before its loop is ready
      expect(await device.groupsSettled()).toEqual({ attached: 1, stopped: undefined });
      const compiled = await runOnDevice(device, graph, data);
      for (const got of [first, compiled])
        expect(want.map((w, k) => mismatches(w, got[k]!))).toEqual(want.map(() => 0));
      // And the CPU device, computed elsewhere entirely, agrees.
      const cpu = await runOnDevice(new CpuDevice(), graph, data);
      expect(cpu.map((w, k) => mismatches(w, compiled[k]!))).toEqual(cpu.map(() => 0));
    }
  });

  it('cut between threads mid-row, give the bits of one thread', async () => {
    const n = 2 ** 20 + 3;
    const rng = new Prng(9);
    const types = [
      { dtype: 'float32', shape: [n] },
      { dtype: 'float32', shape: [] },
    ] as const;
    const attrs = {
      program: [
        ['mul', [0, 1]],
        ['tanh', [2]],
        ['maximum', [3, 0]],
      ],
      outputs: [4],
    };
    const graph = singleOpSubgraph('fused', [...types], attrs);
    const data = [awkwardValues(rng, n), Float32Array.of(0.75)];
    const want = await runOnDevice(new NativeDevice({ threads: 1, codegen: false }), graph, data);
    const device = new NativeDevice({ threads: 2 });
    await runOnDevice(device, graph, data);
    expect((await device.groupsSettled()).attached).toBe(1);
    const [got] = await runOnDevice(device, graph, data);
    expect(mismatches(want[0]!, got!)).toBe(0);
  });

  // x * s + s is also what a compiler allowed to would contract into one fused multiply-add,
  // rounding once where the interpreter rounds twice: this fails without -ffp-contract=off.
  it('write an output over the input it shares memory with, rounding as the interpreter does', async () => {
    const n = GROUP_ELEMENTS + 5;
    const rng = new Prng(3);
    const code = Int32Array.of(34, 0, 1, -1, 32, 2, 1, -1, 11, 3, -1, -1); // relu(x * s + s)
    const strides = Float64Array.of(1, 0);
    const program = addon!.createProgram(code, 2, strides, Float64Array.of(n), Int32Array.of(4));
    const source = groupSource({
      code,
      inputs: [
        { along: 'row', bool: false },
        { along: 'one', bool: false },
      ],
      outputs: [{ slot: 4, bool: false }],
    });
    const library = await new GroupCompiler({ cacheDir: freshFolder() }).compile(source as string);
    expect(library).toBeDefined();
    const x = awkwardValues(rng, n);
    const s = Float32Array.of(-1.25);
    const want = new Float32Array(n);
    addon!.runProgram(program, [x, s], [want], 1);
    addon!.attachGroup(program, library!, Uint8Array.of(0, 0, 0));
    addon!.runProgram(program, [x, s], [x], 1); // in place
    expect(mismatches(want, x)).toBe(0);
  });

  it('are refused for a program of another layout, and libraries that are not loops', async () => {
    const two = addon!.createProgram(
      Int32Array.of(32, 0, 1, -1, 11, 2, -1, -1),
      2,
      Float64Array.of(1, 1),
      Float64Array.of(8),
      Int32Array.of(3),
    );
    const three = groupSource({
      code: Int32Array.of(32, 0, 1, -1, 32, 3, 2, -1),
      inputs: [
        { along: 'row', bool: false },
        { along: 'row', bool: false },
        { along: 'one', bool: false },
      ],
      outputs: [{ slot: 4, bool: false }],
    });
    const library = await new GroupCompiler({ cacheDir: freshFolder() }).compile(three as string);
    expect(() => addon!.attachGroup(two, library!, Uint8Array.of(0, 0, 0))).toThrow(
      /was made for layout ffF>f, not ff>f/,
    );
    // A library of the machine's that is not a group's loop.
    const libm = readdirSync('/lib/x86_64-linux-gnu').find((f) => /^libm\.so\.\d+$/.test(f));
    if (libm)
      expect(() => addon!.attachGroup(two, `/lib/x86_64-linux-gnu/${libm}`, Uint8Array.of(0, 0, 0))).toThrow(
        /is not a kiln group library/,
      );
    // Bools for an input the program reads as float32: the layout differs.
    const own = groupSource({
      code: Int32Array.of(32, 0, 1, -1, 11, 2, -1, -1),
      inputs: [
        { along: 'row', bool: false },
        { along: 'row', bool: false },
      ],
      outputs: [{ slot: 3, bool: false }],
    });
    const fits = await new GroupCompiler({ cacheDir: freshFolder() }).compile(own as string);
    expect(() => addon!.attachGroup(two, fits!, Uint8Array.of(1, 0, 0))).toThrow(
      /made for layout ff>f, not bf>f/,
    );
    addon!.attachGroup(two, fits!, Uint8Array.of(0, 0, 0));
  });

  it('stop, saying why in one line, where the cache folder is open to others, there is no compiler or a loop does not compile', async () => {
    const source = groupSource({
      code: Int32Array.of(11, 0, -1, -1, 0, 1, -1, -1),
      inputs: [{ along: 'row', bool: false }],
      outputs: [{ slot: 2, bool: false }],
    }) as string;
    const attempt = async (options: { cacheDir: string; cc?: string }, text = source) => {
      const lines: string[] = [];
      const compiler = new GroupCompiler({ ...options, log: (line) => lines.push(line) });
      const library = await compiler.compile(text);
      const again = await compiler.compile(source); // nothing more is tried, or said
      return { library, again, lines, stopped: compiler.stopped };
    };

    const open = freshFolder();
    chmodSync(open, 0o777);
    const shared = await attempt({ cacheDir: open });
    expect(shared.library).toBeUndefined();
    expect(shared.again).toBeUndefined();
    expect(shared.lines).toHaveLength(1);
    expect(shared.lines[0]).toMatch(/interpreter.*cache folder .* no one else can write/);
    expect(readdirSync(open)).toEqual([]);

    const none = await attempt({ cacheDir: freshFolder(), cc: '/nonexistent/cc' });
    expect(none.library).toBeUndefined();
    expect(none.lines).toEqual([expect.stringMatching(/no C compiler: \/nonexistent\/cc --version failed/)]);

    const bad = await attempt({ cacheDir: freshFolder() }, `${source}\nthis is not C;\n`);
    expect(bad.library).toBeUndefined();
    expect(bad.again).toBeUndefined();
    expect(bad.lines).toEqual([expect.stringMatching(/error.*the source is kept: .*group-[0-9a-f]+\..*\.c/)]);

    // A folder that works, for contrast: the library is made once, then found.
    const dir = freshFolder();
    const good = await attempt({ cacheDir: dir });
    expect(good.library).toMatch(/group-[0-9a-f]{32}\.so$/);
    expect(good.lines).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual([
      good.library!.split('/').at(-1)!.replace('.so', '.c'),
      good.library!.split('/').at(-1)!,
    ]);
  });
});
