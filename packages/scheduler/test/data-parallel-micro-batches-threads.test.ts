import { CpuDevice } from '@kiln/backend-cpu';
import { Adam, dataParallel, gradients, HostTensor, shardBatch, trainableVariables } from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import { Session } from '../src/session.js';
import { batch, forward } from './fixtures/classifier.js';

const STEPS = 4;
const BATCH = 12;
/** 6 micro-batches of 2 rows: 6, 3, 2 on 1, 2 and 3 workers, and 2, 2, 1, 1 on 4. */
const K = 6;
const workers = (n: number) => Array.from({ length: n }, (_, r) => `worker:${r}`);
const bits = (t: HostTensor) => Array.from(new Uint32Array(Float32Array.from(t.data).buffer));

/** Trains on the first n workers; the losses, the first step's mean gradient and every variable. */
async function train(pool: ThreadPool, n: number) {
  const dp = dataParallel(forward(), {
    devices: workers(n),
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.01 }),
    microBatches: K,
  });
  const gradient = dp.graph.tensor('microBatches/mean');
  const session = new ClusterSession(dp.graph, pool);
  try {
    const losses: HostTensor[] = [];
    let first: HostTensor | undefined;
    for (let step = 0; step < STEPS; step++) {
      const [loss, mean] = await session.run([dp.loss, gradient], shardBatch(batch(BATCH, step), dp), {
        targets: dp.train,
      });
      losses.push(loss!);
      first ??= mean;
    }
    const plan = await session.plan([dp.loss, gradient], shardBatch(batch(BATCH, 0), dp), dp.train);
    const placed = new Set(plan.partitions.map((part) => part.device));
    return { dp, losses, first: first!, variables: await session.variables(), placed, plan };
  } finally {
    await session.dropVariables();
    await session.close();
  }
}

/** The reference: each micro-batch's gradients on one CPU device, folded here in float32 order. */
async function referenceMeanGradient(): Promise<number[]> {
  const g = forward();
  const loss = g.tensor('loss');
  const grads = gradients([loss], trainableVariables(loss)).map((t) => t!);
  const session = new Session(g, { device: new CpuDevice() });
  const { x, y } = batch(BATCH, 0);
  const rows = BATCH / K;
  const part = (t: HostTensor, k: number) => {
    const width = t.shape[1]!;
    return new HostTensor('float32', [rows, width], t.data.slice(k * rows * width, (k + 1) * rows * width));
  };
  let acc: number[] | undefined;
  for (let k = 0; k < K; k++) {
    const values = (await session.run(grads, { x: part(x, k), y: part(y, k) })) as HostTensor[];
    const bucket = values.flatMap((v) => Array.from(v.data));
    acc = acc ? acc.map((a, i) => Math.fround(a + bucket[i]!)) : bucket;
  }
  return acc!.map((v) => Math.fround(v / K));
}

describe('deterministic data-parallel training (microBatches) on worker threads', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 4, device: { module: '@kiln/backend-cpu' } });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('gives bit-identical losses and weights on 1, 2, 3 and 4 workers, equal to the fold done by hand', async () => {
    const reference = await referenceMeanGradient();
    const runs = [];
    for (const n of [1, 2, 3, 4]) runs.push({ n, ...(await train(pool, n)) });
    const one = runs[0]!;
    // Training moved, so equal results are not two runs that never left their start.
    expect(one.losses[STEPS - 1]!.data[0]).not.toBe(one.losses[0]!.data[0]);
    for (const { n, dp, losses, first, variables, placed, plan } of runs) {
      // Each worker computed its own micro-batches, and the running sum went between them.
      expect(placed).toEqual(new Set(workers(n)));
      if (n > 1) expect(plan.transfers).toBeGreaterThan(0);
      // Step 1's mean gradient is the one-device fold, bit for bit, on the workers' CPU kernels.
      expect(Array.from(first.data), `the mean gradient on ${n} workers`).toEqual(reference);
      expect(losses.map(bits), `the losses on ${n} workers`).toEqual(one.losses.map(bits));
      // Every device's variables, optimizer state included, equal those of one worker.
      const names = [...variables.keys()];
      expect(names.length).toBe(n * (4 * 3 + 1));
      for (const [original, perDevice] of dp.variables) {
        const want = bits(one.variables.get(one.dp.variables.get(original)![0]!)!);
        perDevice.forEach((name) =>
          expect(bits(variables.get(name)!), `${name} on ${n} workers`).toEqual(want),
        );
      }
      for (const name of names) {
        // Adam's moments and step counter: device r's have device 0's values, under its own name.
        const onOne = name.replace(/^replica\d+\//, 'replica0/').replace(/^adam\/step_\d+$/, 'adam/step');
        expect(bits(variables.get(name)!), name).toEqual(bits(one.variables.get(onOne)!));
      }
    }
  });
});
