import { loadMnist } from '@kiln/example-mnist/data';
import { type Cluster, ThreadPool } from 'kiln-tensor';
import { describe, expect, it } from 'vitest';
import { placementSummary, trainDataParallel } from '../src/data-parallel.js';
import { trainPipeline } from '../src/pipeline.js';

async function onThreads<T>(workers: number, work: (pool: Cluster) => Promise<T>): Promise<T> {
  const pool = await ThreadPool.create({ workers });
  try {
    return await work(pool);
  } finally {
    await pool.close();
  }
}

describe('examples/threads', () => {
  const { train, test } = loadMnist();

  it('trains the MLP data-parallel to the same loss on 1 and 2 threads, with the replicas on both', async () => {
    const options = { steps: 3, batchSize: 64 };
    const one = await onThreads(1, (pool) => trainDataParallel(pool, train, test, options));
    const two = await onThreads(2, (pool) => trainDataParallel(pool, train, test, options));
    // Same batches, same updates: the global-batch loss agrees to float32 rounding.
    expect(Math.abs(two.finalLoss - one.finalLoss)).toBeLessThan(1e-4);
    expect(Math.abs(two.accuracy - one.accuracy)).toBeLessThanOrEqual(0.002);
    expect(new Set(two.plan.partitions.map((p) => p.device))).toEqual(new Set(['worker:0', 'worker:1']));
    expect(placementSummary(two.plan)).toMatch(/tensor transfers between workers per step/);
  });

  it('trains the CNN pipeline-parallel and prints a schedule over both workers', async () => {
    const result = await onThreads(2, (pool) =>
      trainPipeline(pool, train, test, { steps: 2, batchSize: 32, microBatches: 4 }),
    );
    const rows = result.schedule.split('\n');
    expect(rows[0]).toMatch(/^worker:0 \|[0-3.]+\| busy \d+%$/);
    expect(rows[1]).toMatch(/^worker:1 \|[0-3.]+\| busy \d+%$/);
    // Every micro-batch passed through both workers.
    for (const row of rows.slice(0, 2)) for (const mb of '0123') expect(row).toContain(mb);
    expect(result.accuracy).toBeGreaterThan(0.1);
  });
});
