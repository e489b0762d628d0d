import { CpuDevice } from '@kiln/backend-cpu';
import { Adam, dataParallel, shardBatch } from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import { Session } from '../src/session.js';
import { batch, forward } from './fixtures/classifier.js';

const STEPS = 4;
const BATCH = 12;

async function dataParallelRun(pool: ThreadPool, workers: string[], shardUpdate = false) {
  const dp = dataParallel(forward(), {
    devices: workers,
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.01 }),
    shardUpdate,
  });
  const session = new ClusterSession(dp.graph, pool);
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const loss = await session.run(dp.loss, shardBatch(batch(BATCH, step), dp), { targets: dp.train });
    losses.push(loss.data[0]!);
  }
  return { dp, session, losses, variables: await session.variables() };
}

describe('data-parallel training on worker threads', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('matches single-thread training on the same global batch within float32 rounding', async () => {
    const g = forward();
    const train = new Adam({ learningRate: 0.01 }).minimize(g.tensor('loss'));
    const single = new Session(g, { device: new CpuDevice() });
    const expected: number[] = [];
    for (let step = 0; step < STEPS; step++)
      expected.push((await single.run('loss', batch(BATCH, step), { targets: train })).data[0]!);

    const { dp, losses, variables } = await dataParallelRun(pool, ['worker:0', 'worker:1']);
    // Shard means are averaged rather than one mean over the batch: rounding differs, a little.
    losses.forEach((l, i) =>
      expect(Math.abs(l - expected[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected[i]!))),
    );
    for (const [name, replicas] of dp.variables) {
      const reference = (await single.run(g.tensor(name))).data;
      const [r0, r1] = replicas.map((r) => variables.get(r)!.data);
      // The all-reduce hands every replica the same bits, so the replicas never drift apart.
      expect(Array.from(r1!)).toEqual(Array.from(r0!));
      const worst = Math.max(...Array.from(r0!, (v, i) => Math.abs(v - reference[i]!)));
      expect(worst).toBeLessThan(1e-5);
    }
  });

  it('with the update sharded over the workers, trains as the replicated update does', async () => {
    const plain = await dataParallelRun(pool, ['worker:0', 'worker:1']);
    const sharded = await dataParallelRun(pool, ['worker:0', 'worker:1'], true);
    sharded.losses.forEach((l, i) => expect(Math.abs(l - plain.losses[i]!)).toBeLessThan(1e-6));
    for (const names of sharded.dp.variables.values()) {
      for (const name of names) {
        const a = plain.variables.get(name)!.data;
        const worst = Math.max(
          ...Array.from(sharded.variables.get(name)!.data, (v, i) => Math.abs(v - a[i]!)),
        );
        expect(worst).toBeLessThan(1e-6);
      }
    }
    // Each worker holds the optimizer state of its own shard only.
    expect([...sharded.variables.keys()].filter((k) => k.includes('adam_m'))).toHaveLength(2);
  });

  it('is identical run to run: the reduction order is fixed', async () => {
    const a = await dataParallelRun(pool, ['worker:0', 'worker:1']);
    const b = await dataParallelRun(pool, ['worker:0', 'worker:1']);
    expect(b.losses).toEqual(a.losses);
    for (const [name, t] of a.variables)
      expect(Array.from(b.variables.get(name)!.data)).toEqual(Array.from(t.data));
  });

  it('places each replica on its worker and all-reduces across them', async () => {
    const { dp, session } = await dataParallelRun(pool, ['worker:0', 'worker:1']);
    const p = await session.plan(dp.loss, shardBatch(batch(BATCH, 0), dp), dp.train);
    const devices = new Set(p.partitions.map((part) => part.device));
    expect(devices).toEqual(new Set(['worker:0', 'worker:1']));
    // Replica r's weights are stored by worker r.
    const home = new Map(
      p.partitions.flatMap((part) =>
        part.outputs.flatMap((o) => (o.kind === 'assign' ? [[o.variable, part.device] as const] : [])),
      ),
    );
    for (const replicas of dp.variables.values())
      replicas.forEach((name, r) => expect(home.get(name)).toBe(`worker:${r}`));
    expect(p.transfers).toBeGreaterThan(0);
  });
});
