import {
  Adam,
  ClusterSession,
  dataParallel,
  Graph,
  KilnError,
  mul,
  RemoteCluster,
  shardBatch,
  ThreadPool,
} from 'kiln-tensor';
import { afterEach, describe, expect, it } from 'vitest';
import { batch, forward, train } from './training.js';
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
