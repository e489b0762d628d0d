import { CpuDevice } from '@kiln/backend-cpu';
import {
  type BufferView,
  byteSizeOf,
  type ConcreteType,
  DTYPE_INFO,
  Graph,
  gradients,
  type HostExecutable,
  KilnError,
  type MemoryLayout,
  type NodeId,
  Prng,
  type Subgraph,
  sizeOf,
  softmaxCrossEntropy,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { type MemoryPlan, planMemory } from '../src/plan/memory.js';
import { concrete, randomMatrixGraph } from './fixtures/random-graphs.js';

/** The plan as the ABI carries it: data only. */
function layoutOf(plan: MemoryPlan): MemoryLayout {
  return {
    order: plan.order,
    arenaBytes: plan.arenaBytes,
    offsets: new Map([...plan.buffers].map(([v, b]) => [v, b.offset])),
  };
}

/** Random inputs for a subgraph: normal floats, small ints, random bools. */
function randomInputs(sub: Subgraph, rng: Prng): Uint8Array[] {
  return sub.inputs.map((v) => {
    const t = sub.values[v]!.type as ConcreteType;
    const data = DTYPE_INFO[t.dtype].create(sizeOf(t.shape));
    for (let i = 0; i < data.length; i++) {
      data[i] = t.dtype === 'float32' ? rng.normal() : t.dtype === 'int32' ? rng.int(-9, 9) : rng.int(0, 1);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  });
}

/** Runs an executable with every input and result in its own device buffer; returns result bytes. */
function run(
  device: CpuDevice,
  exe: HostExecutable,
  sub: Subgraph,
  inputs: readonly Uint8Array[],
): Uint8Array[] {
  const views = (ids: readonly number[]): BufferView[] =>
    ids.map((v) => {
      const t = sub.values[v]!.type as ConcreteType;
      return { buffer: device.allocate(byteSizeOf(t)), byteOffset: 0, dtype: t.dtype, shape: t.shape };
    });
  const ins = views(sub.inputs);
  const outs = views(sub.results);
  ins.forEach((view, i) => device.writeSync(view.buffer, 0, inputs[i]!));
  exe.runSync(ins, outs);
  const results = outs.map((view) => device.readSync(view.buffer, 0, view.buffer.byteLength));
  for (const view of [...ins, ...outs]) device.free(view.buffer);
  return results;
}

/**
 * Compiles the subgraph with per-value scratch and with its planned arena, runs both on the same
 * random inputs (twice, so stale arena bytes from the first run cannot hide), and expects the
 * results bit for bit equal. Returns both executables for the figures.
 */
function checkArena(
  sub: Subgraph,
  seed: number,
  plan: MemoryPlan = planMemory(sub),
  device = new CpuDevice(),
): { scratch: HostExecutable; arena: HostExecutable; plan: MemoryPlan } {
  const scratch = device.compileSync(sub);
  const arena = device.compileSync(sub, { memory: layoutOf(plan) });
  expect(scratch.arenaBytes).toBe(0);
  expect(arena.arenaBytes).toBe(plan.arenaBytes);
  expect(arena.scratchBytes).toBe(0);
  const rng = new Prng(seed);
  for (let round = 0; round < 2; round++) {
    const inputs = randomInputs(sub, rng);
    const want = run(device, scratch, sub, inputs);
    const got = run(device, arena, sub, inputs);
    expect(got.length).toBe(want.length);
    got.forEach((bytes, i) => {
      if (!Buffer.from(bytes).equals(Buffer.from(want[i]!))) {
        throw new Error(`result ${i} differs between the arena and per-value scratch (round ${round})`);
      }
    });
  }
  return { scratch, arena, plan };
}

function mlpStep(): Subgraph {
  const g = new Graph();
  const x = g.placeholder('float32', [128, 784], 'x');
  const labels = g.placeholder('float32', [128, 10], 'labels');
  const w1 = g.placeholder('float32', [784, 256], 'w1');
  const b1 = g.placeholder('float32', [256], 'b1');
  const w2 = g.placeholder('float32', [256, 10], 'w2');
  const b2 = g.placeholder('float32', [10], 'b2');
  const h = x.matmul(w1).add(b1).relu();
  const logits = h.matmul(w2).add(b2);
  const loss = softmaxCrossEntropy(logits, labels).mean();
  const params = [w1, b1, w2, b2];
  const grads = gradients([loss], params);
  const updated = params.map((p, i) => p.sub(grads[i]!.mul(0.1)));
  return concrete(g, [loss, ...updated]);
}

/** Expects `f` to throw KilnError('invalid-argument') with a message matching `pattern`. */
function rejects(f: () => unknown, pattern: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe('invalid-argument');
    expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected the layout to be rejected');
}

describe('CpuDevice with a memory plan', () => {
  it('runs an MLP training step from one arena, smaller than per-value scratch', () => {
    const sub = mlpStep();
    const { scratch, arena, plan } = checkArena(sub, 1);
    expect(arena.arenaBytes).toBeLessThan(scratch.scratchBytes);
    expect(plan.arenaBytes).toBeLessThanOrEqual(plan.noReuseBytes);
    console.info(
      `mlp step: arena ${arena.arenaBytes} B (${plan.buffers.size} intermediates), per-value scratch ${scratch.scratchBytes} B, plan lower bound ${plan.lowerBound} B, no reuse (64-aligned) ${plan.noReuseBytes} B`,
    );
  });

  it('runs a 30-op elementwise chain in place', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [64, 64], 'x');
    let y = x.mul(0.5).tanh();
    for (let i = 0; i < 30; i++) y = i % 3 === 0 ? y.tanh() : i % 3 === 1 ? y.mul(x) : y.relu();
    const sub = concrete(g, [y.neg()]);
    const { scratch, arena, plan } = checkArena(sub, 2);
    expect([...plan.buffers.values()].some((b) => b.inPlaceOf !== undefined)).toBe(true);
    expect(arena.arenaBytes).toBeLessThanOrEqual(2 * 64 * 64 * 4);
    expect(scratch.scratchBytes).toBeGreaterThan(30 * 64 * 64 * 4);
  });

  it('runs a diamond, in the planned order and in a given one', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [32, 32], 'x');
    const a = x.exp();
    const b = a.matmul(a);
    const c = a.relu();
    const d = b.add(c).tanh();
    const sub = concrete(g, [d]);
    checkArena(sub, 3);
    checkArena(sub, 4, planMemory(sub, { order: [0, 1, 3, 2, 4, 5], reorder: false }));
  });

  it('runs mixed dtypes (casts and comparisons reuse same-width buffers)', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [16, 8], 'x');
    const i = g.placeholder('int32', [16, 8], 'i');
    const mask = x.greater(0).logicalNot();
    const f = i.cast('float32').mul(x);
    const out = mask.cast('float32').add(f).cast('int32').add(i);
    checkArena(concrete(g, [out, f]), 5);
  });

  it('uses a SharedArrayBuffer arena on a shared device', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [8, 8], 'x');
    const sub = concrete(g, [x.exp().matmul(x).relu().sum(1)]);
    const { arena } = checkArena(sub, 6, planMemory(sub), new CpuDevice({ shared: true }));
    expect(arena.arenaBytes).toBeGreaterThan(0);
  });

  it('matches per-value scratch on 100 random graphs', () => {
    const rng = new Prng(2024);
    for (let trial = 0; trial < 100; trial++) {
      const { graph: g, results } = randomMatrixGraph(rng);
      const sub = concrete(g, results);
      const alignment = rng.pick([4, 16, 64, 256]);
      try {
        checkArena(sub, trial, planMemory(sub, { alignment }));
      } catch (e) {
        throw new Error(`random graph ${trial}: ${(e as Error).message}`);
      }
    }
  });

  it('rejects a layout it cannot run', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [32, 32], 'x');
    const a = x.exp();
    const d = a.matmul(a).add(a.relu()).tanh();
    const sub = concrete(g, [d]);
    const device = new CpuDevice();
    const good = layoutOf(planMemory(sub));
    expect(() => device.compileSync(sub, { memory: good })).not.toThrow();
    const [first, second] = [...good.offsets.keys()];
    const without = new Map(good.offsets);
    without.delete(first!);
    rejects(() => device.compileSync(sub, { memory: { ...good, offsets: without } }), /has no offset/);
    rejects(
      () => device.compileSync(sub, { memory: { ...good, offsets: new Map(good.offsets).set(second!, 2) } }),
      /not aligned/,
    );
    rejects(
      () => device.compileSync(sub, { memory: { ...good, arenaBytes: good.arenaBytes - 64 } }),
      /does not fit/,
    );
    rejects(
      () =>
        device.compileSync(sub, {
          memory: { ...good, offsets: new Map(good.offsets).set(sub.inputs[0]!, 0) },
        }),
      /not an intermediate/,
    );
    // exp (node 1) after the matmul that reads it.
    const steps = good.order.filter((id) => id !== 0);
    const swapped: NodeId[] = [steps[1]!, steps[0]!, ...steps.slice(2)];
    rejects(() => device.compileSync(sub, { memory: { ...good, order: swapped } }), /not topological/);
    rejects(() => device.compileSync(sub, { memory: { ...good, order: steps.slice(0, -1) } }), /leaves out/);
    rejects(() => device.compileSync(sub, { memory: { ...good, order: [...steps, steps[0]!] } }), /twice/);
    rejects(() => device.compileSync(sub, { memory: { ...good, order: [...steps, 99] } }), /#99/);
    // The input placeholder may be listed or left out.
    expect(device.compileSync(sub, { memory: { ...good, order: steps } }).arenaBytes).toBe(good.arenaBytes);
  });

  it('rejects a bad layout through the asynchronous compile too', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 4], 'x');
    const sub = concrete(g, [x.exp().relu().neg()]);
    const good = layoutOf(planMemory(sub));
    await expect(new CpuDevice().compile(sub, { memory: { ...good, offsets: new Map() } })).rejects.toThrow(
      /memory layout: intermediate %\d+ .* has no offset/,
    );
  });
});
