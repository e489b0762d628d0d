import { readFileSync } from 'node:fs';
import { loadMnist } from '@kiln/example-mnist/data';
import { trainDataParallel } from '@kiln/example-threads/data-parallel';
import { trainPipeline } from '@kiln/example-threads/pipeline';
import { type Cluster, RemoteCluster, ThreadPool } from 'kiln-tensor';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalWorkers } from '../src/workers.js';

/**
 * The programs of examples/threads, unchanged, on two `kiln worker` processes against the same on
 * two threads: the MNIST MLP data-parallel (gradients all-reduced worker to worker) and the CNN
 * pipeline-parallel (the convolutions on one process, the classifier on the other, micro-batch
 * activations and their gradients crossing over the peer link).
 */
const TOKEN = 'processes-vs-threads-test';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

async function onProcesses(): Promise<{ cluster: Cluster; children: ReturnType<typeof startLocalWorkers> }> {
  const children: ReturnType<typeof startLocalWorkers> = [];
  const cluster = await RemoteCluster.listen({ workers: 2, token: TOKEN, log: () => {} }, (url) => {
    children.push(...startLocalWorkers(url, TOKEN, 2));
  });
  closers.push(async () => {
    await cluster.close();
    for (const c of children) c.kill('SIGKILL');
  });
  return { cluster, children };
}

describe('examples/cluster: processes against threads', () => {
  const { train, test } = loadMnist();

  it('trains the MNIST MLP data-parallel over two worker processes to the loss and accuracy of two threads', async () => {
    const options = { steps: 4, batchSize: 128 };
    const pool = await ThreadPool.create({ workers: 2 });
    closers.push(() => pool.close());
    const onThreads = await trainDataParallel(pool, train, test, options);
    const { cluster, children } = await onProcesses();
    const remote = await trainDataParallel(cluster, train, test, options);
    // The workers run with the allocator settings the README recommends.
    for (const c of children)
      expect(readFileSync(`/proc/${c.pid}/environ`, 'utf8').split('\0')).toEqual(
        expect.arrayContaining(['MALLOC_MMAP_THRESHOLD_=33554432', 'MALLOC_TRIM_THRESHOLD_=268435456']),
      );
    // The same shards, the same ring, the same kernels: the same bits.
    expect(remote.finalLoss).toBe(onThreads.finalLoss);
    expect(remote.accuracy).toBe(onThreads.accuracy);
    expect(new Set(remote.plan.partitions.map((p) => p.device))).toEqual(new Set(['worker:0', 'worker:1']));
  }, 240_000);

  it('trains the CNN pipeline-parallel over two worker processes to the losses and accuracy of two threads', async () => {
    const options = { steps: 3, batchSize: 32, microBatches: 4 };
    const pool = await ThreadPool.create({ workers: 2 });
    closers.push(() => pool.close());
    const onThreads = await trainPipeline(pool, train, test, options);
    const remote = await trainPipeline((await onProcesses()).cluster, train, test, options);
    // Same placement, same micro-batches, same kernels: the same bits.
    expect(remote.losses).toEqual(onThreads.losses);
    expect(remote.accuracy).toBe(onThreads.accuracy);
    expect(remote.losses.every(Number.isFinite)).toBe(true);
    // Both processes ran every micro-batch, overlapped.
    const rows = remote.schedule.split('\n');
    for (const row of rows.slice(0, 2)) for (const mb of '0123') expect(row).toContain(mb);
  }, 240_000);
});
