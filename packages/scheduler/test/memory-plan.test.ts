import { Graph, gradients, KilnError, type NodeId, Prng, type Subgraph, softmaxCrossEntropy } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { formatMemoryPlan, type MemoryPlan, planMemory, verifyPlan } from '../src/plan/memory.js';
import { concrete, randomMatrixGraph } from './fixtures/random-graphs.js';

function checkBounds(sub: Subgraph, plan: MemoryPlan): void {
  verifyPlan(sub, plan);
  expect(plan.arenaBytes).toBeLessThanOrEqual(plan.noReuseBytes);
  expect(plan.arenaBytes).toBeGreaterThanOrEqual(plan.lowerBound);
  for (const v of [...sub.inputs, ...sub.results]) {
    expect(plan.pinned).toContain(v);
    expect(plan.buffers.has(v)).toBe(false);
  }
}

/** A random topological order of the subgraph's nodes. */
function randomOrder(sub: Subgraph, rng: Prng): NodeId[] {
  const done = new Set<NodeId>();
  const order: NodeId[] = [];
  while (order.length < sub.nodes.length) {
    const ready = sub.nodes.filter(
      (n) => !done.has(n.id) && n.inputs.every((v) => done.has(sub.values[v]!.node)),
    );
    const n = rng.pick(ready);
    done.add(n.id);
    order.push(n.id);
  }
  return order;
}

function mlpStep(): { sub: Subgraph; params: number } {
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
  return { sub: concrete(g, [loss, ...updated]), params: params.length };
}

describe('planMemory', () => {
  it('runs a long elementwise chain in about two buffers', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [256, 256], 'x');
    let y = x.exp();
    for (let i = 0; i < 30; i++) y = i % 3 === 0 ? y.tanh() : i % 3 === 1 ? y.mul(x) : y.relu();
    const out = y.neg();
    const sub = concrete(g, [out]);
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    const one = 256 * 256 * 4;
    expect(plan.buffers.size).toBeGreaterThan(25);
    expect(plan.arenaBytes).toBeLessThanOrEqual(2 * one);
    expect(plan.noReuseBytes).toBeGreaterThan(25 * one);
    expect([...plan.buffers.values()].filter((b) => b.inPlaceOf !== undefined).length).toBeGreaterThan(20);
  });

  it('reuses buffers where ops cannot run in place', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [64, 64], 'x');
    let y = x.transpose();
    for (let i = 0; i < 12; i++) y = y.transpose();
    const sub = concrete(g, [y]);
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    const one = 64 * 64 * 4;
    expect([...plan.buffers.values()].every((b) => b.inPlaceOf === undefined)).toBe(true);
    expect(plan.arenaBytes).toBe(2 * one);
    expect(plan.lowerBound).toBe(2 * one);
    expect(plan.noReuseBytes).toBe(12 * one);
  });

  it('does not run a broadcast input in place', () => {
    const g = new Graph();
    const row = g.placeholder('float32', [1, 64], 'row');
    const x = g.placeholder('float32', [64, 64], 'x');
    const small = row.exp();
    const big = small.add(x);
    const sub = concrete(g, [big.sum()]);
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    const ids = [...plan.buffers.keys()];
    expect(ids.every((v) => plan.buffers.get(v)!.inPlaceOf === undefined)).toBe(true);
  });

  it('plans a diamond within its bounds', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [32, 32], 'x');
    const a = x.exp();
    const b = a.matmul(a);
    const c = a.relu();
    const d = b.add(c).tanh();
    const sub = concrete(g, [d]);
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    const one = 32 * 32 * 4;
    // relu is a's last use, so c takes a's buffer; add and tanh run in place too: b and a/c remain.
    expect(plan.lowerBound).toBe(2 * one);
    expect(plan.arenaBytes).toBe(2 * one);
    // With relu before the matmul, a is still needed after relu: no in-place there, three buffers.
    const early = planMemory(sub, { order: [0, 1, 3, 2, 4, 5], reorder: false });
    checkBounds(sub, early);
    expect(early.arenaBytes).toBe(3 * one);
  });

  it('plans an MLP training step', () => {
    const { sub } = mlpStep();
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    expect(plan.arenaBytes).toBeLessThan(plan.noReuseBytes / 2);
    expect(plan.arenaBytes).toBeLessThanOrEqual(1.1 * plan.lowerBound);
    // Inputs (x, labels, weights) and results (loss, new weights) never enter the arena.
    expect(plan.pinned.length).toBeGreaterThanOrEqual(6 + 5);
    const report = formatMemoryPlan(plan);
    expect(report).toMatch(/arena .* lower bound .* no reuse/);
    console.log(`MLP training step [128,784] -> 256 -> 10:\n${report}`);
    const given = planMemory(sub, { reorder: false });
    verifyPlan(sub, given);
    expect(plan.arenaBytes).toBeLessThanOrEqual(given.arenaBytes);
  });

  it('chooses an order that lowers the peak', () => {
    const g = new Graph();
    const xs = [0, 1, 2, 3].map((i) => g.placeholder('float32', [128, 128], `x${i}`));
    const bigs = xs.map((x) => x.matmul(x));
    const sums = bigs.map((b) => b.sum());
    const total = sums.reduce((s, t) => s.add(t));
    const sub = concrete(g, [total]);
    const plan = planMemory(sub);
    checkBounds(sub, plan);
    const one = 128 * 128 * 4;
    expect(plan.orderComparison.given.arenaBytes).toBeGreaterThanOrEqual(4 * one);
    expect(plan.orderComparison.chosen).toBe('greedy');
    expect(plan.arenaBytes).toBeLessThan(2 * one);
    expect(plan.order).not.toEqual(sub.nodes.map((n) => n.id));
  });

  it('keeps a given order when asked not to reorder', () => {
    const { sub } = mlpStep();
    const order = randomOrder(sub, new Prng(7));
    const plan = planMemory(sub, { order, reorder: false });
    expect(plan.order).toEqual(order);
    expect(plan.orderComparison.greedy).toBeUndefined();
    checkBounds(sub, plan);
  });

  it('rejects an order that is not topological', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const sub = concrete(g, [x.exp().neg()]);
    const order = sub.nodes.map((n) => n.id).reverse();
    expect(() => planMemory(sub, { order })).toThrow(/runs before/);
    expect(() => planMemory(sub, { order: [0] })).toThrow(KilnError);
  });

  it('verifyPlan names two overlapping values', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [16, 16], 'x');
    const a = x.transpose();
    const b = x.matmul(x);
    const sub = concrete(g, [a.matmul(b)]);
    const plan = planMemory(sub);
    verifyPlan(sub, plan);
    const [va, vb] = [...plan.buffers.keys()];
    const buffers = new Map(plan.buffers);
    buffers.set(vb!, { ...plan.buffers.get(vb!)!, offset: plan.buffers.get(va!)!.offset });
    const broken = { ...plan, buffers };
    expect(() => verifyPlan(sub, broken)).toThrow(KilnError);
    expect(() => verifyPlan(sub, broken)).toThrow(new RegExp(`%${va}.*%${vb}|%${vb}.*%${va}`));
    const misaligned = new Map(plan.buffers);
    misaligned.set(va!, { ...plan.buffers.get(va!)!, offset: 8 });
    expect(() => verifyPlan(sub, { ...plan, buffers: misaligned })).toThrow(/aligned/);
    expect(() => verifyPlan(sub, { ...plan, arenaBytes: plan.arenaBytes - 64 })).toThrow(/outside/);
  });

  it('verifies 100 random graphs', () => {
    const rng = new Prng(2024);
    for (let trial = 0; trial < 100; trial++) {
      const { graph: g, results } = randomMatrixGraph(rng);
      const sub = concrete(g, results);
      const alignment = rng.pick([1, 16, 64, 256]);
      const order = rng.bool() ? randomOrder(sub, rng) : undefined;
      const plan = planMemory(sub, { alignment, ...(order ? { order } : {}) });
      try {
        checkBounds(sub, plan);
      } catch (e) {
        throw new Error(`random graph ${trial}: ${(e as Error).message}`);
      }
      expect(plan.arenaBytes % alignment).toBe(0);
    }
  });
});
