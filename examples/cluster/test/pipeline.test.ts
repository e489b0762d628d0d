import { loadMnist } from '@kiln/example-mnist/data';
import { trainPipeline } from '@kiln/example-threads/pipeline';
import { type Cluster, RemoteCluster, ThreadPool } from 'kiln';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalWorkers } from '../src/workers.js';

/**
 * The pipeline-parallel CNN of examples/threads on two `kiln worker` processes: the convolutions on
 * one, the classifier on the other, micro-batch activations and their gradients crossing between
 * the processes over their peer link. The same program on two threads is the reference.
 */
const TOKEN = 'pipeline-test';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

async function onProcesses(): Promise<Cluster> {
  const children: ReturnType<typeof startLocalWorkers> = [];
  const cluster = await RemoteCluster.listen({ workers: 2, token: TOKEN, log: () => {} }, (url) => {
    children.push(...startLocalWorkers(url, TOKEN, 2));
  });
  closers.push(async () => {
    await cluster.close();
    for (const c of children) c.kill('SIGKILL');
  });
  return cluster;
}

describe('examples/cluster: pipeline parallel', () => {
  const { train, test } = loadMnist();
  const options = { steps: 3, batchSize: 32, microBatches: 4 };

  it('trains the CNN over two worker processes to the same losses and accuracy as on two threads', async () => {
    const pool = await ThreadPool.create({ workers: 2 });
    closers.push(() => pool.close());
    const onThreads = await trainPipeline(pool, train, test, options);
    const remote = await trainPipeline(await onProcesses(), train, test, options);
    // Same placement, same micro-batches, same kernels: the same bits.
    expect(remote.losses).toEqual(onThreads.losses);
    expect(remote.accuracy).toBe(onThreads.accuracy);
    expect(remote.losses.every(Number.isFinite)).toBe(true);
    // Both processes ran every micro-batch, overlapped.
    const rows = remote.schedule.split('\n');
    for (const row of rows.slice(0, 2)) for (const mb of '0123') expect(row).toContain(mb);
  }, 240_000);
});
