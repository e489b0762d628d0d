import { CpuDevice } from '@kiln/backend-cpu';
import {
  Adam,
  add,
  Graph,
  HostTensor,
  KilnError,
  matmul,
  mean,
  Prng,
  randomNormal,
  relu,
  sigmoid,
  softmax,
  sparseSoftmaxCrossEntropy,
  tanh,
} from '@kiln/ir';
import {
  ClusterSession,
  compile,
  EagerContext,
  Session,
  type Tensor,
  ThreadPool,
  tensor,
} from '@kiln/scheduler';
import { afterEach, describe, expect, it } from 'vitest';
import { PrimitivesOnlyDevice } from './fixtures/primitives-only-plugin.js';

const PLUGIN = new URL('./fixtures/primitives-only-plugin.ts', import.meta.url).href;

/**
 * A two-layer classifier with a softmax loss: relu, mean, the loss and Adam's updates are
 * composites. With `split`, the second layer and the loss ask for worker:1.
 */
function mlp(split = false) {
  const g = new Graph();
  const x = g.placeholder('float32', [16, 12], 'x');
  const labels = g.placeholder('int32', [16], 'labels');
  const w1 = g.variable('w1', randomNormal(g, [12, 10], { seed: 1, stddev: 0.3 }));
  const h = relu(add(matmul(x, w1), 0.1));
  const head = () => {
    const w2 = g.variable('w2', randomNormal(g, [10, 4], { seed: 2, stddev: 0.3 }));
    return mean(sparseSoftmaxCrossEntropy(matmul(h, w2), labels));
  };
  const loss = split ? g.onDevice('worker:1', head) : head();
  return { g, loss, train: new Adam({ learningRate: 0.01 }).minimize(loss) };
}

function batch(step: number) {
  const rng = new Prng(100 + step);
  return {
    x: new HostTensor(
      'float32',
      [16, 12],
      Float32Array.from({ length: 16 * 12 }, () => rng.normal()),
    ),
    labels: new HostTensor(
      'int32',
      [16],
      Int32Array.from({ length: 16 }, () => rng.int(0, 3)),
    ),
  };
}

async function train(run: (step: number) => Promise<HostTensor>, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await run(s)).data[0]!);
  return losses;
}

/** Expansions round differently from fused kernels, by float32 ulps: equal to a few parts in 1e5. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-4) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++)
    expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(rtol * (1 + Math.abs(want[i]!)));
}

describe('a device that runs only the primitives', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('trains under Session as the full CPU device does, and lists what it expanded', async () => {
    const sessions = [new CpuDevice(), new PrimitivesOnlyDevice()].map((device) => {
      const m = mlp();
      return { m, session: new Session(m.g, { device }) };
    });
    const runs = await Promise.all(
      sessions.map(({ m, session }) => train((s) => session.run(m.loss, batch(s), { targets: m.train }), 8)),
    );
    expectClose(runs[1]!, runs[0]!);
    expect(runs[1]![7]!).toBeLessThan(runs[1]![0]!);
    const [full, primitives] = sessions.map(({ session }) => session);
    expectClose((await primitives!.readVariable('w1')).data, (await full!.readVariable('w1')).data);
    expect(full!.fallbacks).toEqual([]);
    const expanded = primitives!.fallbacks.map((f) => f.op);
    for (const op of ['relu', 'mean', 'sparseSoftmaxCrossEntropy'] as const) expect(expanded).toContain(op);
    // Fusion asked the device first: it made no group this device would only expand again.
    expect(expanded).not.toContain('fused');
    expect(primitives!.fallbacks[0]!.reason).toBe('primitives:0 claims only the primitives');
  });

  it('runs eager ops and compiled functions through their expansions', () => {
    const [full, primitives] = [new CpuDevice(), new PrimitivesOnlyDevice()].map((d) => new EagerContext(d));
    const values = Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);
    const f = (x: Tensor): Tensor => softmax(tanh(sigmoid(relu(x))));
    const results = [full!, primitives!].map((ctx) => {
      const x = tensor(ctx, values, [4, 6]);
      return { eager: f(x).dataSync(), compiled: compile(f)(x).dataSync() };
    });
    expectClose(results[1]!.eager, results[0]!.eager, 1e-5);
    expectClose(results[1]!.compiled, results[0]!.compiled, 1e-5);
    expect(primitives!.fallbacks.map((x) => x.op)).toEqual(
      expect.arrayContaining(['softmax', 'tanh', 'relu']),
    );
    expect(full!.fallbacks).toEqual([]);
  });

  it('names the device, the op and its reason when it declines a primitive', async () => {
    const m = mlp();
    const session = new Session(m.g, { device: new PrimitivesOnlyDevice({ decline: 'exp' }) });
    const error = await session.run(m.loss, batch(0)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).code).toBe('unsupported');
    expect((error as Error).message).toMatch(
      /primitives:0 cannot run exp\(f32\[16,4\]\): declined by this test device\. exp is a primitive, which every device must run/,
    );
  });

  it('fuses in a plan for workers that all run fused groups', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
    const cluster = mlp(true);
    const plan = await new ClusterSession(cluster.g, pool).plan(cluster.loss, batch(0), cluster.train);
    expect(plan.graph.nodes.some((n) => n.op === 'fused')).toBe(true);
    expect(plan.expansions.filter((e) => e.op === 'fused')).toEqual([]);
  });

  it('trains on worker threads whose device runs only the primitives: the plan expands for them', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: PLUGIN } });
    const cluster = mlp(true);
    const session = new ClusterSession(cluster.g, pool);
    const plan = await session.plan(cluster.loss, batch(0), cluster.train);
    const expanded = new Set(plan.expansions.map((e) => `${e.device} ${e.op}`));
    for (const want of ['worker:0 relu', 'worker:1 sparseSoftmaxCrossEntropy', 'worker:1 mean'])
      expect(expanded).toContain(want);
    expect(plan.expansions[0]!.reason).toMatch(/reported no kernel for/);
    // Fusion asked the workers first: nothing was fused for them only to be expanded back.
    expect(plan.graph.nodes.filter((n) => n.op === 'fused')).toEqual([]);
    expect([...expanded].filter((e) => e.endsWith(' fused'))).toEqual([]);
    const local = mlp(true);
    const reference = new Session(local.g, { device: new CpuDevice() });
    const [remote, here] = await Promise.all([
      train(
        async (s) => (await session.run(cluster.loss, batch(s), { targets: cluster.train })) as HostTensor,
        5,
      ),
      train((s) => reference.run(local.loss, batch(s), { targets: local.train }), 5),
    ]);
    expectClose(remote, here);
  });
});
