import { CpuDevice } from '@kiln/backend-cpu';
import { add, type KilnError, matmul, mul, printGraph, relu, sum, tanh } from '@kiln/ir';
import {
  compile,
  GraphBreak,
  randomNormal,
  setDefaultDevice,
  type Tensor,
  tensor,
  trace,
  traceWith,
} from '@kiln/scheduler';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

beforeAll(() => {
  setDefaultDevice(new CpuDevice({ name: 'cpu:trace' }));
});
afterEach(() => {
  vi.restoreAllMocks();
});

const close = (a: Tensor, b: Tensor) =>
  Array.from(a.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(b.dataSync()[i]!, 5));

/** Halves x until its squared norm is under 1: the loop count depends on the data. */
function shrink(x: Tensor): Tensor {
  let h = x;
  while (sum(mul(h, h)).item() > 1) h = mul(h, 0.5);
  return h;
}

describe('trace', () => {
  it('records a run into a graph that computes the same thing for new inputs', () => {
    const w = randomNormal([4, 3], { seed: 1 });
    const model = (x: Tensor) => relu(add(matmul(x, w), 0.1));
    const traced = trace(model, randomNormal([2, 4], { seed: 2 }));
    expect(traced.inputs).toHaveLength(1);
    expect(traced.captures).toEqual([w]);
    expect(printGraph(traced.graph)).toMatch(/matmul\(%0, %1\)/);
    const x = randomNormal([2, 4], { seed: 3 });
    close(traced.toFunction().call([x])[0]!, model(x));
  });

  it('refuses to let a read of a traced value steer JS, naming where', () => {
    let err: unknown;
    try {
      trace(shrink, tensor([8, 6]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GraphBreak);
    expect((err as KilnError).message).toMatch(
      /shrink reads the value of traced tensor %\d+: f32\[\] .*\(item\(\)\) at .*trace-compile\.test\.ts:\d+:\d+/,
    );
    expect((err as KilnError).message).toMatch(/Use script\(\)/);
  });

  it('in non-strict mode warns and freezes the branch: right for the example, wrong for others', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const traced = traceWith({ strict: false }, shrink, tensor([8, 6]));
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/frozen into the graph/));
    const f = traced.toFunction();
    // The example took 4 halvings, and so does every input now.
    close(f.call([tensor([8, 6])])[0]!, shrink(tensor([8, 6])));
    const other = tensor([80, 60]);
    expect(Array.from(f.call([other])[0]!.dataSync())).toEqual([5, 3.75]);
    expect(Array.from(shrink(other).dataSync())).toEqual([0.625, 0.46875]);
  });
});

describe('compile', () => {
  const mlp = (x: Tensor, w1: Tensor, w2: Tensor) => tanh(matmul(relu(matmul(x, w1)), w2));

  it('traces once per signature and then runs the cached graph', () => {
    const f = compile(mlp);
    const w1 = randomNormal([4, 8], { seed: 1 });
    const w2 = randomNormal([8, 2], { seed: 2 });
    for (let i = 0; i < 3; i++) {
      const x = randomNormal([5, 4], { seed: 10 + i });
      close(f(x, w1, w2), mlp(x, w1, w2));
    }
    expect(f.stats).toMatchObject({ calls: 3, traces: 1, cached: 1 });
    f(randomNormal([7, 4], { seed: 20 }), w1, w2);
    expect(f.stats.traces).toBe(2);
  });

  it('retraces on a new non-tensor argument value, warns when it retraces too often, caps its cache', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const scale = compile((x: Tensor, k: number) => mul(x, k), { cacheSize: 3, retraceWarningAt: 4 });
    const x = tensor([1, 2]);
    expect(Array.from(scale(x, 3).dataSync())).toEqual([3, 6]);
    expect(Array.from(scale(x, 3).dataSync())).toEqual([3, 6]);
    for (const k of [4, 5, 6, 7]) expect(Array.from(scale(x, k).dataSync())).toEqual([k, 2 * k]);
    expect(scale.stats).toMatchObject({ calls: 6, traces: 5, cached: 3 });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/was traced 4 times[\s\S]*T\(float32\[2\]@cpu:trace\), 6/);
  });

  it('falls back to eager at a graph break, with a warning, and stays correct for every input', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const f = compile(shrink);
    expect(Array.from(f(tensor([8, 6])).dataSync())).toEqual([0.5, 0.375]);
    expect(Array.from(f(tensor([80, 60])).dataSync())).toEqual([0.625, 0.46875]);
    expect(f.stats).toMatchObject({ traces: 1, eagerCalls: 2 });
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/graph break in shrink: .*run eagerly/));
  });

  it('sees a replaced closed-over tensor: a disposed capture retraces', () => {
    let w = tensor([1, 2]);
    const f = compile((x: Tensor) => mul(x, w));
    expect(Array.from(f(tensor([1, 1])).dataSync())).toEqual([1, 2]);
    const next = add(w, 1);
    w.dispose();
    w = next;
    expect(Array.from(f(tensor([1, 1])).dataSync())).toEqual([2, 3]);
    expect(f.stats.traces).toBe(2);
  });

  it('sees a closed-over tensor replaced without being disposed', () => {
    let w = tensor([1, 2]);
    const f = compile((x: Tensor) => mul(x, w));
    expect(Array.from(f(tensor([1, 1])).dataSync())).toEqual([1, 2]);
    const old = w;
    w = add(w, 1); // the old tensor stays alive (kept for comparison, say)
    expect(Array.from(f(tensor([1, 1])).dataSync())).toEqual([2, 3]);
    w = mul(w, 10);
    expect(Array.from(f(tensor([1, 1])).dataSync())).toEqual([20, 30]);
    expect(Array.from(old.dataSync())).toEqual([1, 2]);
  });

  it('keeps its compiled program when a tensor derived from a capture does not replace it', () => {
    const w = tensor([1, 2]);
    const f = compile((x: Tensor) => mul(x, w));
    const first = f(tensor([1, 1]));
    const doubled = mul(w, 2); // same type as w, computed from it, but w is still w
    const second = f(tensor([1, 1]));
    expect(Array.from(second.dataSync())).toEqual(Array.from(first.dataSync()));
    expect(f.stats.traces).toBe(1);
    expect(Array.from(doubled.dataSync())).toEqual([2, 4]);
  });

  it('optimizes the traced graph: dead code is gone before it is compiled', () => {
    const traced = trace(
      (x: Tensor) => {
        mul(x, 3); // computed and dropped: dead code in the trace
        return relu(x);
      },
      tensor([1, -1]),
    );
    const fn = traced.toFunction();
    const dce = fn.optimizations.find((r) => r.pass === 'dead-code elimination')!;
    expect(dce.nodesAfter).toBeLessThan(dce.nodesBefore);
    expect(Array.from(fn.call([tensor([2, -2])])[0]!.dataSync())).toEqual([2, 0]);
  });

  it('rejects arguments it cannot put in a signature', () => {
    const f = compile((x: Tensor) => x);
    expect(() => (f as unknown as (a: unknown) => unknown)(new Map())).toThrow(
      /argument 0 is a Map; compiled functions take tensors and plain JSON values/,
    );
  });
});
