import * as k from '@kiln/ir';
import {
  abs,
  add,
  concat,
  deserializeGraph,
  div,
  exp,
  Graph,
  greater,
  interpret,
  type MatmulOptions,
  matmul,
  max,
  mul,
  neg,
  Prng,
  parseScript,
  printGraph,
  type ReduceOptions,
  type RefTensor,
  refTensor,
  relu,
  reshape,
  type ScriptedGraph,
  type SymbolicTensor,
  scriptToGraph,
  serializeGraph,
  softmax,
  sub,
  sum,
  type TensorHandle,
  type TensorType,
  tanh,
  transpose,
  where,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

/**
 * `script` reads a function's source and lowers it, data-dependent control flow included. The
 * functions below are ordinary TypeScript over the functional API and the methods of eager
 * tensors (typed by `Tensor`, as the eager runtime will provide them); each graph is run with the
 * reference interpreter on random inputs and compared with a hand-written float32 re-implementation
 * of the same computation, including inputs that take different branches and iteration counts.
 */
interface Tensor extends TensorHandle {
  readonly rank: number;
  readonly size: number;
  item(): number;
  add(y: Tensor | number): Tensor;
  mul(y: Tensor | number): Tensor;
  matmul(y: Tensor, options?: MatmulOptions): Tensor;
  relu(): Tensor;
  sum(axes?: number | number[] | null, options?: ReduceOptions): Tensor;
}

const f32 = (shape: (number | null)[]): TensorType => ({ dtype: 'float32', shape });
const i32 = (shape: number[]): TensorType => ({ dtype: 'int32', shape });

/** Runs a scripted graph with the reference interpreter. */
function run(
  s: ScriptedGraph,
  args: readonly RefTensor[],
  captures: Record<string, RefTensor> = {},
): RefTensor[] {
  const bound = new Map<number, RefTensor>();
  s.inputs.forEach((p, i) => bound.set(p.id, args[i]!));
  for (const c of s.captureInputs) bound.set(c.placeholder.id, captures[c.name]!);
  const env = interpret(
    s.graph,
    s.graph.nodes.map((n) => n.id),
    bound,
  );
  return s.outputs.map((o) => env.get(o.id)!);
}

const ops = (g: Graph) => g.nodes.map((n) => n.op);

// ---------------------------------------------------------------- float32 re-implementations

const fr = Math.fround;
type Matrix = number[][];
const matrix = (rng: Prng, rows: number, cols: number, scale = 1): Matrix =>
  Array.from({ length: rows }, () => Array.from({ length: cols }, () => fr(rng.normal() * scale)));
const ref = (m: Matrix): RefTensor => refTensor('float32', [m.length, m[0]!.length], m.flat());
const vec = (v: number[]): RefTensor => refTensor('float32', [v.length], v);
const scalarI32 = (x: number): RefTensor => refTensor('int32', [], [x]);
const mapM = (m: Matrix, f: (x: number) => number): Matrix => m.map((r) => r.map((x) => fr(f(x))));
const matmulJs = (a: Matrix, b: Matrix): Matrix =>
  a.map((row) => b[0]!.map((_, j) => fr(row.reduce((acc, x, p) => acc + x * b[p]![j]!, 0))));
const sumJs = (m: Matrix): number => fr(m.flat().reduce((a, b) => a + b, 0));

function expectClose(got: RefTensor, want: number[], rtol = 1e-6): void {
  expect(got.data.length).toBe(want.length);
  want.forEach((w, i) => {
    expect(Math.abs(got.data[i]! - w)).toBeLessThanOrEqual(1e-7 + rtol * Math.abs(w));
  });
}

// ---------------------------------------------------------------- the scripted functions

/** The loop of the issue: iterate a damped layer until the state is small, at most 20 times. */
function decay(x: Tensor, w: Tensor) {
  let h = x;
  let i = 0;
  while (sum(mul(h, h)).item() > 0.01 && i < 20) {
    h = mul(tanh(matmul(h, w)), 0.5);
    i = i + 1;
  }
  return [h, i];
}

function decayJs(x: Matrix, w: Matrix): { h: Matrix; i: number } {
  let h = x;
  let i = 0;
  while (sumJs(mapM(h, (v) => v * v)) > fr(0.01) && i < 20) {
    h = mapM(mapM(matmulJs(h, w), Math.tanh), (v) => v * 0.5);
    i = i + 1;
  }
  return { h, i };
}

/** A tensor `if` that assigns two variables, one a number until the branch makes it a tensor. */
function clip(x: Tensor, limit: Tensor) {
  let y = x;
  let scale = 1;
  const peak = max(abs(x)).item();
  if (peak > limit.item()) {
    scale = limit.item() / peak;
    y = mul(x, scale);
  }
  return [y, scale];
}

/** Early returns: the rest of the function becomes the else branch of each returning `if`. */
function early(x: Tensor) {
  const s = sum(x).item();
  if (s < 0) {
    return neg(x);
  }
  const y = mul(x, 2);
  if (s > 10) return y;
  return add(y, 1);
}

/** Collatz steps: a tensor `if` inside a tensor `while`, and a counter that widens to float32. */
function collatz(n: Tensor) {
  let m = n.item();
  let steps = 0;
  while (m > 1) {
    const half = Math.floor(m / 2);
    if (m - half * 2 === 0) {
      m = half;
    } else {
      m = 3 * m + 1;
    }
    steps++;
  }
  return steps;
}

function collatzJs(n: number): number {
  let steps = 0;
  while (n > 1) {
    n = n % 2 === 0 ? n / 2 : 3 * n + 1;
    steps++;
  }
  return steps;
}

describe('script: data-dependent control flow', () => {
  it('lowers a while loop with a tensor condition and a promoted counter, and matches JavaScript', () => {
    const s = scriptToGraph(decay, [f32([2, 4]), f32([4, 4])]);
    expect(s.outputStructure).toBe('array');
    expect(ops(s.graph)).toContain('while');
    expect(s.outputs.map((o) => o.type)).toEqual([f32([2, 4]), i32([])]);
    const rng = new Prng(11);
    const counts = new Set<number>();
    for (let trial = 0; trial < 30; trial++) {
      const x = matrix(rng, 2, 4, trial % 5 === 0 ? 0.01 : 1);
      const w = matrix(rng, 4, 4, 0.5 + rng.next() * 2);
      const want = decayJs(x, w);
      const [h, i] = run(s, [ref(x), ref(w)]);
      expect(i!.data[0]).toBe(want.i);
      expectClose(h!, want.h.flat());
      counts.add(want.i);
    }
    // Different inputs take different numbers of iterations (zero and the cap of 20 included).
    expect(counts.size).toBeGreaterThan(3);
    expect(counts.has(0)).toBe(true);
  });

  it('merges variables assigned in a tensor if (SSA), each branch keeping the other value', () => {
    const s = scriptToGraph(clip, [f32([5]), f32([])]);
    expect(ops(s.graph)).toContain('cond');
    expect(s.outputs[1]!.type).toEqual(f32([]));
    const rng = new Prng(3);
    const branches = new Set<boolean>();
    for (let trial = 0; trial < 20; trial++) {
      const x = Array.from({ length: 5 }, () => fr(rng.normal() * 3));
      const limit = fr(0.5 + rng.next() * 5);
      const peak = Math.max(...x.map(Math.abs));
      const clipped = peak > limit;
      const scale = clipped ? fr(limit / peak) : 1;
      const [y, sc] = run(s, [vec(x), refTensor('float32', [], [limit])]);
      expect(sc!.data[0]).toBe(scale);
      expectClose(
        y!,
        x.map((v) => (clipped ? fr(v * scale) : v)),
      );
      branches.add(clipped);
    }
    expect(branches.size).toBe(2);
  });

  it('lowers early returns by making the rest of the function the else branch', () => {
    const s = scriptToGraph(early, [f32([3])]);
    expect(s.outputStructure).toBe('single');
    expect(ops(s.graph).filter((op) => op === 'cond')).toHaveLength(1);
    for (const x of [
      [-1, -2, 0.5],
      [1, 2, 0.5],
      [4, 5, 6],
    ]) {
      const sum0 = x.reduce((a, b) => a + b, 0);
      const want = sum0 < 0 ? x.map((v) => -v) : sum0 > 10 ? x.map((v) => v * 2) : x.map((v) => v * 2 + 1);
      expectClose(run(s, [vec(x)])[0]!, want);
    }
  });

  it('nests a tensor if in a tensor while, widening an int32 value that meets a float', () => {
    const s = scriptToGraph(collatz, [i32([])]);
    expect(s.outputs[0]!.type).toEqual(i32([]));
    const text = printGraph(s.graph);
    expect(text).toMatch(/= while\(/);
    expect(text).toMatch(/^ {6}%\d+ = cond\(/m);
    for (const n of [1, 2, 3, 7, 27, 97, 871]) {
      expect(run(s, [scalarI32(n)])[0]!.data[0]).toBe(collatzJs(n));
    }
  });

  it('widens a carried dimension that changes between iterations', () => {
    const s = scriptToGraph(
      (x: Tensor) => {
        let h = x;
        while (sum(h).item() < 100) {
          h = concat([h, h], 0);
        }
        return h;
      },
      [f32([2])],
    );
    expect(s.outputs[0]!.shape).toEqual([null]);
    const [h] = run(s, [vec([1, 2])]);
    expect(h!.shape).toEqual([128]);
    const [once] = run(s, [vec([60, 50])]);
    expect(once!.shape).toEqual([2]);
  });

  it('widens a counter to float32 when the loop adds a fraction to it', () => {
    const s = scriptToGraph(
      (x: Tensor) => {
        let t = 0;
        while (t < x.item()) {
          t = t + 0.5;
        }
        return t;
      },
      [f32([])],
    );
    expect(s.outputs[0]!.type).toEqual(f32([]));
    expect(run(s, [refTensor('float32', [], [2.2])])[0]!.data[0]).toBe(2.5);
  });

  it('picks a branch at lowering time when the condition is a plain value (static if)', () => {
    const act = (mode: number) =>
      scriptToGraph(
        function act(x: Tensor) {
          if (MODE === 1) {
            return relu(x);
          } else if (x.shape[0] === 2 || x.rank > 1 || x.size > 8) {
            return tanh(x);
          }
          return neg(x);
        },
        [f32([3])],
        { captures: { MODE: mode } },
      );
    expect(ops(act(1).graph)).toEqual(['placeholder', 'relu']);
    expect(ops(act(0).graph)).toEqual(['placeholder', 'neg']);
  });

  it('unrolls small counted for loops and lowers long ones to while', () => {
    const poly = scriptToGraph(
      (x: Tensor) => {
        let acc = x;
        for (let i = 1; i < 4; i++) {
          acc = add(mul(acc, x), i);
        }
        return acc;
      },
      [f32([2])],
    );
    expect(ops(poly.graph)).not.toContain('while');
    // ((x*x + 1)*x + 2)*x + 3
    const p = (x: number) => ((x * x + 1) * x + 2) * x + 3;
    expectClose(run(poly, [vec([0.5, -2])])[0]!, [p(0.5), p(-2)]);

    const long = scriptToGraph(
      (x: Tensor) => {
        let y = x;
        for (let i = 0; i < 200; i += 2) {
          y = add(y, i);
        }
        return y;
      },
      [f32([1])],
    );
    expect(ops(long.graph)).toContain('while');
    expectClose(run(long, [vec([1])])[0]!, [1 + 9900]);
  });

  it('lowers a for loop whose condition reads tensors to while', () => {
    const s = scriptToGraph(
      (x: Tensor) => {
        let y = x;
        let n = 0;
        for (let i = 1; sum(y).item() < 100; i++) {
          y = mul(y, 2);
          n = i;
        }
        return [y, n];
      },
      [f32([2])],
    );
    const [y, n] = run(s, [vec([1, 2])]);
    expectClose(y!, [64, 128]);
    expect(n!.data[0]).toBe(6);
    expect(run(s, [vec([100, 1])])[1]!.data[0]).toBe(0);
  });
});

describe('script: calls, methods, options, captures', () => {
  it('accepts tensor method calls, options objects, shape reads and array literals', () => {
    const s = scriptToGraph(
      function layer(x: Tensor, w: Tensor) {
        const h = x.matmul(w, { transposeB: true }).relu();
        const flat = reshape(h, [h.shape[0]! * h.shape[1]!]);
        const t = transpose(h, [1, 0]);
        return [h.sum(1, { keepDims: true }), flat, softmax(t, -1), k.add(h, 1)];
      },
      [f32([2, 3]), f32([4, 3])],
    );
    expect(s.outputs.map((o) => o.shape)).toEqual([[2, 1], [8], [4, 2], [2, 4]]);
    const rng = new Prng(5);
    const x = matrix(rng, 2, 3);
    const w = matrix(rng, 4, 3);
    const wT = w[0]!.map((_, j) => w.map((r) => r[j]!));
    const h = mapM(matmulJs(x, wT), (v) => Math.max(v, 0));
    const [rowSums, flat, , plusOne] = run(s, [ref(x), ref(w)]);
    expectClose(
      rowSums!,
      h.map((r) => fr(r.reduce((a, b) => a + b, 0))),
    );
    expectClose(flat!, h.flat());
    expectClose(
      plusOne!,
      h.flat().map((v) => fr(v + 1)),
    );
  });

  it('makes captured tensors graph inputs and captured numbers constants', () => {
    const weights = { dtype: 'float32' as const, shape: [3, 2] };
    const s = scriptToGraph((x: Tensor) => relu(add(matmul(x, W), BIAS)), [f32([1, 3])], {
      captures: { W: weights, BIAS: 0.25 },
    });
    expect(s.captureInputs).toHaveLength(1);
    expect(s.captureInputs[0]!.name).toBe('W');
    expect(s.captureInputs[0]!.source).toBe(weights);
    expect(s.captureInputs[0]!.placeholder.node.attrs.name).toBe('W');
    const constants = s.graph.nodes.filter((n) => n.op === 'constant');
    expect(constants.map((n) => (n.attrs.value as { data: Float32Array }).data[0])).toEqual([0.25]);
    // The runtime binds the capture's current value on every run.
    const x = [[1, 2, 3]];
    for (const wv of [
      [
        [1, 0],
        [0, 1],
        [1, 1],
      ],
      [
        [-1, 0],
        [0, -1],
        [2, 0],
      ],
    ]) {
      const want = mapM(matmulJs(x, wv), (v) => Math.max(v + 0.25, 0));
      expectClose(run(s, [ref(x)], { W: ref(wv) })[0]!, want.flat());
    }
  });

  it('passes captured tensors read inside loops and branches in as operands', () => {
    const s = scriptToGraph(
      (x: Tensor) => {
        let h = x;
        let i = 0;
        while (i < 3) {
          if (sum(h).item() > 0) {
            h = add(h, STEP);
          }
          i++;
        }
        return h;
      },
      [f32([2])],
      { captures: { STEP: { dtype: 'float32', shape: [2] } } },
    );
    expect(s.captureInputs.map((c) => c.name)).toEqual(['STEP']);
    expectClose(run(s, [vec([1, 1])], { STEP: vec([1, -2]) })[0]!, [3, -3]);
    expectClose(run(s, [vec([1, 1])], { STEP: vec([1, -1]) })[0]!, [4, -2]);
  });

  it('inlines calls to other scripted functions, with their own captures and early returns', () => {
    function dense(x: Tensor, w: Tensor) {
      if (sum(x).item() < 0) return relu(matmul(x, w));
      return add(matmul(x, w), OFFSET);
    }
    const denseScript = parseScript(dense, { captures: { OFFSET: 1 } });
    const square = (x: Tensor) => mul(x, x);
    const s = scriptToGraph(
      (x: Tensor, w1: Tensor, w2: Tensor) => {
        const h = dense(x, w1);
        return square(dense(h, w2));
      },
      [f32([1, 2]), f32([2, 2]), f32([2, 1])],
      { captures: { dense: denseScript, square } },
    );
    const denseJs = (x: Matrix, w: Matrix) => {
      const m = matmulJs(x, w);
      return sumJs(x) < 0 ? mapM(m, (v) => Math.max(v, 0)) : mapM(m, (v) => v + 1);
    };
    const rng = new Prng(9);
    for (let trial = 0; trial < 10; trial++) {
      const x = matrix(rng, 1, 2, 2);
      const w1 = matrix(rng, 2, 2);
      const w2 = matrix(rng, 2, 1);
      const want = mapM(denseJs(denseJs(x, w1), w2), (v) => v * v);
      expectClose(run(s, [ref(x), ref(w1), ref(w2)])[0]!, want.flat(), 1e-5);
    }
  });

  it('reads arrow functions with expression and block bodies', () => {
    const sq = scriptToGraph((x: Tensor) => mul(x, x), [f32([2])]);
    expectClose(run(sq, [vec([3, -2])])[0]!, [9, 4]);
    const norm = scriptToGraph(
      (x: Tensor) => {
        const e = exp(x);
        return div(e, sum(e).item());
      },
      [f32([2])],
    );
    const e = [Math.exp(1), Math.exp(2)].map(fr);
    expectClose(run(norm, [vec([1, 2])])[0]!, [fr(e[0]! / fr(e[0]! + e[1]!)), fr(e[1]! / fr(e[0]! + e[1]!))]);
  });

  it('gives where the dtype of its first tensor branch for numbers read from tensors', () => {
    const s = scriptToGraph((x: Tensor) => where(greater(x, 0), sum(x).item(), 0), [f32([3])]);
    expect(s.outputs[0]!.type).toEqual(f32([3]));
    expectClose(run(s, [vec([1, -2, 3])])[0]!, [2, 0, 2]);
  });

  it('reads method shorthand (a function defined in an object literal)', () => {
    const model = {
      forward(x: Tensor) {
        return relu(x);
      },
    };
    const s = scriptToGraph(model.forward, [f32([2])]);
    expectClose(run(s, [vec([-1, 2])])[0]!, [0, 2]);
  });

  it('folds arithmetic on plain numbers and lowers it on values read from tensors', () => {
    const s = scriptToGraph(
      (x: Tensor) => {
        const n = (Math.sqrt(16) + 2 ** 3) % 5;
        const m = sum(x).item() / x.shape[0]!;
        const sign = m > 0 ? x : neg(x);
        return [sub(x, m * n), sign, -m];
      },
      [f32([4])],
    );
    // n = 12 % 5 = 2 is folded; m is a mean computed in the graph.
    const [centered, sign, negMean] = run(s, [vec([1, 2, 3, -10])]);
    expectClose(
      centered!,
      [1, 2, 3, -10].map((v) => v - -1 * 2),
    );
    expectClose(sign!, [-1, -2, -3, 10]);
    expect(negMean!.data[0]).toBe(1);
  });
});

describe('script: graphs are ordinary graphs', () => {
  it('serializes a scripted graph with loops and branches, and it runs the same after loading', () => {
    const s = scriptToGraph(decay, [f32([2, 4]), f32([4, 4])]);
    const bytes = serializeGraph(s.graph);
    const loaded = Graph.from(deserializeGraph(bytes));
    expect(serializeGraph(loaded)).toEqual(bytes);
    expect(printGraph(loaded)).toBe(printGraph(s.graph));
    const rng = new Prng(21);
    const x = matrix(rng, 2, 4);
    const w = matrix(rng, 4, 4, 1.5);
    const inputs = new Map<number, RefTensor>([
      [loaded.nodes.find((n) => n.attrs.name === 'x')!.outputs[0]!, ref(x)],
      [loaded.nodes.find((n) => n.attrs.name === 'w')!.outputs[0]!, ref(w)],
    ]);
    const env = interpret(
      loaded,
      loaded.nodes.map((n) => n.id),
      inputs,
    );
    const [h, i] = run(s, [ref(x), ref(w)]);
    expect(Array.from(env.get(loaded.outputs.output0!)!.data)).toEqual(Array.from(h!.data));
    expect(env.get(loaded.outputs.output1!)!.data[0]).toBe(i!.data[0]);
  });

  it('parses once and lowers for each signature', () => {
    const parsed = parseScript(decay);
    expect(parsed.params).toEqual(['x', 'w']);
    const small = parsed.lower([f32([1, 2]), f32([2, 2])]);
    const wide = parsed.lower([f32([null, 8]), f32([8, 8])]);
    expect(small.outputs[0]!.shape).toEqual([1, 2]);
    expect(wide.outputs[0]!.shape).toEqual([null, 8]);
    expect(small.inputs.map((t: SymbolicTensor) => t.node.attrs.name)).toEqual(['x', 'w']);
  });
});

// Names the scripted functions above read through `captures`; they are never evaluated here.
declare const MODE: number;
declare const W: Tensor;
declare const BIAS: number;
declare const STEP: Tensor;
declare const OFFSET: number;
