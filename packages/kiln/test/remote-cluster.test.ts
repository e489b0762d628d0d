import {
  Adam,
  add,
  type Cluster,
  ClusterSession,
  dataParallel,
  Graph,
  HostTensor,
  heNormal,
  KilnError,
  logSoftmax,
  matmul,
  mean,
  mul,
  neg,
  Prng,
  RemoteCluster,
  relu,
  shardBatch,
  sum,
  ThreadPool,
  tensor,
} from 'kiln';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, startWorker, type WorkerChild } from './worker-processes.js';

/**
 * Worker processes on 127.0.0.1, started as a user starts them (`kiln worker --connect`), against
 * the same program on worker threads: the cluster is made differently, nothing else changes.
 */

const TOKEN = 'remote-cluster-test';
const FAULTY = new URL('../../scheduler/test/fixtures/faulty-plugin.ts', import.meta.url).href;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

function forward(hidden = 16) {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 20], 'x');
  const y = g.placeholder('float32', [null, 3], 'y');
  const dense = (input: typeof x, units: number, seed: number, name: string) =>
    g.scope(name, () => {
      const w = g.variable('w', heNormal(g, [input.shape[1] as number, units], { seed }));
      const b = g.variable('b', tensor(g, new Array(units).fill(0.01), [units]));
      return add(matmul(input, w), b);
    });
  // Variables of differently sized models get different names: sessions on one cluster share
  // its workers' variables by name.
  const logits = g.scope(`h${hidden}`, () => dense(relu(dense(x, hidden, 1, 'd1')), 3, 2, 'd2'));
  g.output('loss', neg(mean(sum(mul(y, logSoftmax(logits)), -1))));
  return g;
}

function batch(rows: number, seed: number) {
  const rng = new Prng(seed);
  const x = Float32Array.from({ length: rows * 20 }, () => rng.normal());
  const y = new Float32Array(rows * 3);
  for (let i = 0; i < rows; i++) y[i * 3 + rng.int(0, 2)] = 1;
  return { x: new HostTensor('float32', [rows, 20], x), y: new HostTensor('float32', [rows, 3], y) };
}

/** The same data-parallel training, on whatever cluster it is given. */
async function train(cluster: Cluster, steps: number) {
  const dp = dataParallel(forward(), {
    devices: [...cluster.names],
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.01 }),
  });
  const session = new ClusterSession(dp.graph, cluster);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++)
    losses.push(
      (await session.run(dp.loss, shardBatch(batch(12, step), dp), { targets: dp.train })).data[0]!,
    );
  return { dp, session, losses, variables: await session.variables() };
}

async function remote(workers: number, extra: readonly string[] = []) {
  const children: WorkerChild[] = [];
  const cluster = await RemoteCluster.listen({ workers, token: TOKEN, log: () => {} }, (url) => {
    for (let i = 0; i < workers; i++) children.push(startWorker(url, TOKEN, extra));
  });
  closers.push(() => cluster.close());
  const byName = new Map<string, WorkerChild>();
  for (const c of children) byName.set(await c.ready, c);
  return { cluster, byName };
}

describe('a cluster of worker processes', () => {
  it('trains data-parallel to weights bit-identical to the same program on threads', async () => {
    const { cluster } = await remote(2);
    const onProcesses = await train(cluster, 4);
    const pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
    closers.push(() => pool.close());
    const onThreads = await train(pool, 4);
    expect(onProcesses.losses).toEqual(onThreads.losses);
    expect([...onProcesses.variables.keys()]).toEqual([...onThreads.variables.keys()]);
    for (const [name, value] of onThreads.variables)
      expect(Array.from(onProcesses.variables.get(name)!.data), name).toEqual(Array.from(value.data));
  }, 120_000);

  it('sends the coordinator the same bytes per step whatever the size of the model', async () => {
    const { cluster } = await remote(2);
    const perStep = async (hidden: number) => {
      const dp = dataParallel(forward(hidden), {
        devices: [...cluster.names],
        loss: 'loss',
        shard: ['x', 'y'],
        optimizer: new Adam({ learningRate: 0.01 }),
      });
      const session = new ClusterSession(dp.graph, cluster);
      const step = (k: number) => session.run(dp.loss, shardBatch(batch(12, k), dp), { targets: dp.train });
      await step(0); // loads the partitions and initializes the variables
      const total = () => cluster.traffic().reduce((n, t) => n + t.sent + t.received, 0);
      const before = total();
      for (let k = 1; k <= 5; k++) await step(k);
      await session.unload();
      return (total() - before) / 5;
    };
    const small = await perStep(16);
    const large = await perStep(1024); // 64 times the weights, and the gradients all-reduced
    // Feeds, the fetched loss and the control messages: the same for both; the gradients go
    // worker to worker.
    expect(large).toBeLessThan(small * 1.05 + 256);
  }, 120_000);

  it('fails the step a worker is killed in, naming the worker and the partition', async () => {
    // Both workers serve a CPU device that blocks for good in a node named 'boom' when fed a NaN:
    // the step is surely in flight on worker:1 when its process is killed.
    const { cluster, byName } = await remote(2, [
      '--device',
      FAULTY,
      '--device-options',
      JSON.stringify({ fault: 'hang', trigger: 'nan' }),
    ]);
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const h = g.onDevice('worker:0', () => mul(x, 2));
    const y = g.onDevice('worker:1', () => g.apply('neg', [h], {}, 'boom')[0]!);
    const session = new ClusterSession(g, cluster);
    expect(Array.from((await session.run(y, { x: [1, 2, 3, 4] })).data)).toEqual([-2, -4, -6, -8]);
    const step = session.run(y, { x: [1, Number.NaN, 3, 4] });
    await new Promise((r) => setTimeout(r, 500));
    byName.get('worker:1')!.process.kill('SIGKILL');
    const error = await step.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toMatch(/worker 'worker:1' died while running partition \S+/);
    // The coordinator's story of the run, in the error: where it sent what, and the death.
    expect((error as KilnError).message).toMatch(/\[exited-\d+\] worker:1 exited: .* -> run \d+ failed/);
  }, 120_000);

  it('fails a step whose worker is killed, naming it, and goes on with a new worker', async () => {
    const { cluster, byName } = await remote(2);
    const { dp, session } = await train(cluster, 1);
    const before = await session.variables();
    const spare = startWorker(cluster.url, TOKEN);
    await until(() => cluster.spares === 1, 'the spare to connect');
    // worker:1's process is killed from outside, as a machine is lost.
    const victim = byName.get('worker:1')!;
    victim.process.kill('SIGKILL');
    await victim.exited;
    const error = await session.run(dp.loss, shardBatch(batch(12, 9), dp), { targets: dp.train }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toMatch(/were lost when 'worker:1' died/);
    await cluster.settled();
    expect(cluster.generation('worker:1')).toBe(2);
    expect(await spare.ready).toBe('worker:1');
    // The variables worker:1 held were lost with it: they are given back, and training goes on.
    const now = await session.variables();
    const lost = new Map([...before].filter(([name]) => !now.has(name)));
    expect(lost.size).toBeGreaterThan(0);
    await session.setVariables(lost);
    const loss = await session.run(dp.loss, shardBatch(batch(12, 1), dp), { targets: dp.train });
    expect(Number.isFinite(loss.data[0])).toBe(true);
  }, 120_000);
});

async function until(ok: () => boolean, what: string, millis = 30_000): Promise<void> {
  const end = performance.now() + millis;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
