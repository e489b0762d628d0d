import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CpuDevice } from '@kiln/backend-cpu';
import {
  add,
  broadcastTo,
  decodeCheckpoint,
  deserializeGraph,
  Graph,
  zeros as graphZeros,
  HostTensor,
  KilnError,
  matmul,
  mul,
  oneHot,
  reshape,
  SymbolicTensor,
  slice,
  sum,
  transpose,
} from '@kiln/ir';
import { compile, ones, Session, setDefaultDevice, tensor, zeros } from '@kiln/scheduler';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * Bad input from a careless caller: every error is a KilnError saying what was wrong and where,
 * raised before anything is allocated, and nothing is silently turned into a NaN or a `{}`.
 */

beforeAll(() => {
  setDefaultDevice(new CpuDevice({ name: 'cpu:bad-input' }));
});

function kilnError(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a KilnError');
}

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a rejection');
}

describe('shapes', () => {
  it('refuses negative, fractional and oversized shapes before allocating', () => {
    expect(kilnError(() => zeros([-1])).message).toMatch(
      /dimension 0 of shape \[-1\] is not a non-negative integer/,
    );
    expect(kilnError(() => ones([2, 0.5])).message).toMatch(/dimension 1 of shape \[2,0.5\]/);
    expect(kilnError(() => zeros([2 ** 31, 2 ** 31])).message).toMatch(
      /f32\[2147483648,2147483648\] would take 1.84e\+19 bytes; a tensor holds at most 4294967295/,
    );
    expect(kilnError(() => graphZeros(new Graph(), [-3])).code).toBe('invalid-argument');
    expect(kilnError(() => HostTensor.zeros('float32', [2 ** 20, 2 ** 20])).code).toBe('shape');
    expect(kilnError(() => new HostTensor('float32', [4, 0.25], new Float32Array(1))).message).toMatch(
      /HostTensor: dimension 1 of shape \[4,0.25\] is not a non-negative integer/,
    );
    expect(kilnError(() => new HostTensor('float32', [2], [1, 2] as never)).message).toMatch(/Float32Array/);
  });

  it('refuses an op whose result could not be held, when it is built', () => {
    const x = tensor([1]);
    expect(kilnError(() => broadcastTo(x, [2 ** 31, 2 ** 31])).message).toMatch(
      /broadcastTo: f32\[2147483648,2147483648\] would take/,
    );
    const g = new Graph();
    const p = g.placeholder('float32', [1], 'p');
    const e = kilnError(() => g.apply('broadcastTo', [p], { shape: [65536, 65536] }, 'big'));
    expect(e.message).toMatch(/node #1 \(broadcastTo 'big'\): broadcastTo: f32\[65536,65536\]/);
  });
});

describe('fetches', () => {
  const g = new Graph();
  const x = g.placeholder('float32', [2], 'x');
  g.output('y', mul(x, 2));
  const session = new Session(g, { device: new CpuDevice() });

  it.each([
    ['a number', 3, /cannot fetch 3 \(a number\)/],
    ['null', null, /cannot fetch null/],
    ['undefined inside an array', ['y', undefined], /cannot fetch undefined \(element 1\)/],
    ['a boolean in a record', { a: true }, /cannot fetch true \(a boolean\) \(key 'a'\)/],
    ['a Map', new Map(), /cannot fetch a Map/],
    ['an unknown name', 'nope', /nope/],
  ])('refuses %s', async (_, fetch, message) => {
    expect((await rejection(session.run(fetch as never, { x: [1, 2] }))).message).toMatch(message);
  });

  it('refuses a symbolic tensor with an id the graph does not have', () => {
    expect(kilnError(() => new SymbolicTensor(g, 999)).message).toMatch(/no value %999 in this graph/);
    expect(kilnError(() => new SymbolicTensor(g, null as never)).message).toMatch(/no value %null/);
  });
});

describe('host data', () => {
  const g = new Graph();
  g.placeholder('float32', [null], 'f');
  g.placeholder('int32', [null], 'i');
  g.placeholder('bool', [null], 'b');
  const session = new Session(g, { device: new CpuDevice() });

  it.each([
    ['a string', 'f', ['1'], /element \[0\] is the string "1"; a float32 tensor takes numbers/],
    ['a hole', 'f', Object.assign(new Array(3), { 0: 1, 2: 3 }), /element \[1\] is undefined/],
    ['undefined', 'f', [undefined], /element \[0\] is undefined/],
    ['an object', 'f', [{}], /element \[0\] is an object/],
    ['a boolean for float32', 'f', [true], /element \[0\] is boolean true; a float32 tensor takes numbers/],
    ['a fraction for int32', 'i', [1.5], /element \[0\] is number 1.5; a int32 tensor takes integers/],
    ['2^31 for int32', 'i', [2 ** 31], /a int32 tensor takes integers from -2\^31/],
    ['"false" for bool', 'b', ['false'], /element \[0\] is the string "false"; a bool tensor takes booleans/],
    ['2 for bool', 'b', [2], /a bool tensor takes booleans \(or 0 and 1\)/],
    ['a ragged nesting', 'f', [[1], [2, 3]], /ragged/],
  ])('refuses %s in a feed, naming the placeholder and the element', async (_, name, value, message) => {
    const e = await rejection(session.run(name, { [name]: value as never }));
    expect(e.code).toBe('feed');
    expect(e.message).toMatch(new RegExp(`feed for placeholder '${name}'`));
    expect(e.message).toMatch(message);
  });

  it('takes what it should: numbers, integers, booleans and 0/1', async () => {
    expect(Array.from((await session.run('f', { f: [1.5, Number.NaN] })).data)).toEqual([1.5, Number.NaN]);
    expect(Array.from((await session.run('i', { i: [-(2 ** 31), 7] })).data)).toEqual([-(2 ** 31), 7]);
    expect(Array.from((await session.run('b', { b: [true, 0, 1] })).data)).toEqual([1, 0, 1]);
  });

  it('checks flat values given with a shape', () => {
    expect(kilnError(() => tensor(['a'] as never, [1])).message).toMatch(/element \[0\] is the string "a"/);
    expect(kilnError(() => tensor(Float32Array.of(0.5), [1], 'int32')).message).toMatch(
      /element \[0\] is number 0.5/,
    );
    expect(kilnError(() => tensor([1, 2, 3], [2])).message).toMatch(/3 values do not fill shape \[2\]/);
  });
});

describe('junk arguments to the public API', () => {
  // Every entry point, every kind of wrong value: each call succeeds or throws (or rejects with)
  // a KilnError; a TypeError or RangeError from deep inside is a failure naming the call.
  it('end in a KilnError, never another error', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const session = new Session(g, { device: new CpuDevice() });
    const e = tensor([1, 2]);
    const junk: unknown[] = [
      null,
      undefined,
      'a',
      1.5,
      -1,
      {},
      [],
      [null],
      Number.NaN,
      Symbol('s'),
      () => 1,
      new Map(),
      2 ** 40,
    ];
    const calls: [string, (j: never) => unknown][] = [
      ['tensor(j)', (j) => tensor(j)],
      ['tensor([1], j)', (j) => tensor([1], j)],
      ['tensor([1], [1], j)', (j) => tensor([1], [1], j)],
      ['zeros(j)', (j) => zeros(j)],
      ['HostTensor.from(j)', (j) => HostTensor.from(j)],
      ['placeholder(j, [1])', (j) => new Graph().placeholder(j, [1], 'p')],
      ['placeholder shape j', (j) => new Graph().placeholder('float32', j, 'p')],
      ['placeholder name j', (j) => new Graph().placeholder('float32', [1], j)],
      ['add(symbolic, j)', (j) => add(x, j)],
      ['add(eager, j)', (j) => add(e, j)],
      ['matmul(eager, j)', (j) => matmul(e, j)],
      ['reshape(eager, j)', (j) => reshape(e, j)],
      ['sum(eager, j)', (j) => sum(e, j)],
      ['transpose(eager, j)', (j) => transpose(e, j)],
      ['slice(eager, j, j)', (j) => slice(e, j, j)],
      ['oneHot(indices, j)', (j) => oneHot(tensor([1], [1], 'int32'), j)],
      ['Session.run(x, j)', (j) => session.run(x, j)],
      ['Session.run(x, { x: j })', (j) => session.run(x, { x: j })],
      ['Session.run(x, feeds, j)', (j) => session.run(x, { x: [1, 2] }, j)],
      ['new Session(j)', (j) => new Session(j, { device: new CpuDevice() })],
      ['new Session(graph, j)', (j) => new Session(g, j)],
      ['Session.restore(j)', (j) => session.restore(j)],
      ['compile(j)', (j) => compile(j)],
      ['graph.tensor(j)', (j) => g.tensor(j)],
      ['graph.output(j, x)', (j) => new Graph().output(j, x)],
      ['deserializeGraph(j)', (j) => deserializeGraph(j)],
      ['decodeCheckpoint(j)', (j) => decodeCheckpoint(j)],
    ];
    const wrong: string[] = [];
    for (const [name, call] of calls) {
      for (const j of junk) {
        try {
          await call(j as never);
        } catch (err) {
          if (!(err instanceof KilnError)) wrong.push(`${name} with j = ${String(j)}: ${String(err)}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('refuses a string operand instead of making it a NaN', () => {
    expect(kilnError(() => add(tensor([1]), '2' as never)).message).toMatch(
      /add: an operand is a string; pass a tensor, a number or a boolean/,
    );
  });
});

describe('large constants', () => {
  // A fresh process per case, so its peak resident memory is this tensor's alone.
  async function peakMiB(what: string, mib: number): Promise<number> {
    const fixture = new URL('./fixtures/peak-memory.ts', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@kiln/source', '--import', 'tsx', fixture, what, String(mib)],
      { timeout: 120_000, killSignal: 'SIGKILL' },
    );
    const { before, after } = JSON.parse(stdout) as { before: number; after: number };
    return after - before;
  }

  it.each(['zeros', 'ones', 'tensor'])(
    '%s of 512 MiB keeps one copy on the device and no other',
    async (what) => {
      // The device buffer itself is 512 MiB; a second copy anywhere would add as much again.
      expect(await peakMiB(what, 512)).toBeLessThan(512 * 1.4);
    },
    150_000,
  );
});
