import { add, ClusterSession, Graph, HostTensor, neg, RemoteCluster } from 'kiln-tensor';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, startWorker, type WorkerChild } from './worker-processes.js';

/**
 * A worker alive but stuck in a kernel (a test device whose `neg` never returns): heartbeats still
 * answer, since the socket lives on the process's main thread; the progress watchdog there sees
 * that no node has started for `--watchdog-ms`, says where the run stopped, and drops the device
 * thread; the worker comes back with a fresh one, and the cluster goes on.
 */
const TOKEN = 'watchdog-test';
const SPIN = new URL('../../scheduler/test/fixtures/spin-plugin.ts', import.meta.url).href;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

describe('the progress watchdog', () => {
  it('names the worker, the partition and the node of a stuck kernel, and the worker comes back', async () => {
    let worker: WorkerChild | undefined;
    const cluster = await RemoteCluster.listen({ workers: 1, token: TOKEN, log: () => {} }, (url) => {
      worker = startWorker(url, TOKEN, ['--device', SPIN, '--watchdog-ms', '600']);
    });
    closers.push(() => cluster.close());
    expect(await worker!.ready).toBe('worker:0');
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const fine = add(x, 1);
    const stuck = neg(fine);
    const session = new ClusterSession(g, cluster);
    const feeds = { x: new HostTensor('float32', [4], Float32Array.of(1, 2, 3, 4)) };
    expect(Array.from((await session.run(fine, feeds)).data)).toEqual([2, 3, 4, 5]);

    const started = performance.now();
    const error = await session.run(stuck, feeds).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const seconds = (performance.now() - started) / 1000;
    expect(error?.message).toMatch(
      /worker 'worker:0' died while running partition \S+: .*stuck: no progress for \d+ ms in node \d+ of partition \S+ \(watchdogMillis 600\)/,
    );
    expect(seconds).toBeLessThan(10);
    expect(worker!.stderr()).toMatch(/stuck: no progress for \d+ ms in node \d+ of partition/);
    // The same process reconnects with a fresh device thread and takes the name again.
    await cluster.settled();
    expect(Array.from((await session.run(fine, feeds)).data)).toEqual([2, 3, 4, 5]);
  }, 60_000);
});
