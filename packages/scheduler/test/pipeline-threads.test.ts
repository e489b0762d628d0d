import { CpuDevice } from '@kiln/backend-cpu';
import {
  accumulateGradients,
  add,
  Graph,
  HostTensor,
  heNormal,
  logSoftmax,
  matmul,
  mean,
  mul,
  neg,
  Prng,
  relu,
  SGD,
  sum,
} from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import type { TraceEntry } from '../src/cluster/worker-pool.js';
import { Session } from '../src/session.js';

/** Two layers, the first on worker:0 and the second (with the loss) on worker:1. */
function model(pipelined: boolean) {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 24], 'x');
  const y = g.placeholder('float32', [null, 4], 'y');
  const scope = <R>(device: string, build: () => R) => (pipelined ? g.onDevice(device, build) : build());
  const h = scope('worker:0', () => relu(matmul(x, g.variable('w1', heNormal(g, [24, 32], { seed: 1 })))));
  const loss = scope('worker:1', () => {
    const logits = matmul(h, g.variable('w2', heNormal(g, [32, 4], { seed: 2 })));
    return neg(mean(sum(mul(y, logSoftmax(add(logits, 0))), -1)));
  });
  return { g, loss };
}

function batch(rows: number, seed: number) {
  const rng = new Prng(seed);
  const y = new Float32Array(rows * 4);
  for (let i = 0; i < rows; i++) y[i * 4 + rng.int(0, 3)] = 1;
  return {
    x: new HostTensor(
      'float32',
      [rows, 24],
      Float32Array.from({ length: rows * 24 }, () => rng.normal()),
    ),
    y: new HostTensor('float32', [rows, 4], y),
  };
}

/** Rows [k*m, (k+1)*m) of a batch, as views. */
function micro(b: ReturnType<typeof batch>, k: number, m: number) {
  return {
    x: new HostTensor('float32', [m, 24], b.x.data.subarray(k * m * 24, (k + 1) * m * 24) as Float32Array),
    y: new HostTensor('float32', [m, 4], b.y.data.subarray(k * m * 4, (k + 1) * m * 4) as Float32Array),
  };
}

describe('pipeline-parallel training on worker threads', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('overlaps micro-batches across the stages and equals one full-batch step', async () => {
    const MICRO = 4;
    const ROWS = 32;
    const reference = model(false);
    const step = new SGD({ learningRate: 0.5 }).minimize(reference.loss);
    const single = new Session(reference.g, { device: new CpuDevice() });

    const piped = model(true);
    const acc = accumulateGradients(piped.loss, new SGD({ learningRate: 0.5 }), { microBatches: MICRO });
    const cluster = new ClusterSession(piped.g, pool);
    const trace: TraceEntry[] = [];
    for (let s = 0; s < 2; s++) {
      const b = batch(ROWS, s);
      await single.run(reference.loss, b, { targets: step });
      const feeds = Array.from({ length: MICRO }, (_, k) => micro(b, k, ROWS / MICRO));
      const losses = await cluster.runMany(piped.loss, feeds, { targets: acc.accumulate, trace });
      expect(losses).toHaveLength(MICRO);
      await cluster.run([], {}, { targets: acc.apply });
    }
    const vars = await cluster.variables();
    for (const name of ['w1', 'w2']) {
      const expected = (await single.run(reference.g.tensor(name))).data;
      const worst = Math.max(...Array.from(vars.get(name)!.data, (v, i) => Math.abs(v - expected[i]!)));
      expect(worst).toBeLessThan(1e-5);
    }
    // The accumulators are zero again after each apply.
    expect(Array.from(vars.get('w1/grad_sum')!.data).every((v) => v === 0)).toBe(true);

    // Pipelining: some partition of one micro-batch ran on one worker while another micro-batch's
    // ran on the other.
    const overlapping = trace.some((a) =>
      trace.some((b) => a.worker !== b.worker && a.run !== b.run && a.start < b.end && b.start < a.end),
    );
    expect(overlapping).toBe(true);
    // Each worker ran one partition at a time.
    for (const w of ['worker:0', 'worker:1']) {
      const mine = trace.filter((e) => e.worker === w).sort((a, b) => a.start - b.start);
      for (let i = 1; i < mine.length; i++)
        expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end - 1e-6);
    }
  });
});
