import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatStory,
  Graph,
  HostTensor,
  matmul,
  mean,
  RemoteCluster,
  square,
  sub,
  ThreadPool,
  tensor,
} from 'kiln-tensor';
import { connectJobs, JobsCoordinator, writeSafetensors } from 'kiln-tensor/jobs';
import { afterEach, describe, expect, it } from 'vitest';
import { train } from './training.js';
import { killAll, startWorker, type WorkerChild } from './worker-processes.js';

/**
 * A cluster over TLS end to end: the coordinator serves wss://, each worker verifies it with the
 * CA and serves its own peer port over wss:// too, so the tensors going worker to worker are
 * encrypted as the control messages are. (One self-signed certificate for 127.0.0.1 plays the CA
 * and every party's certificate here.)
 */
const TOKEN = 'tls-cluster-test';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

function certificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-cluster-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  // biome-ignore format: an openssl command line reads better on one line
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

describe('a cluster over TLS', () => {
  it('trains data-parallel over wss:// links, peer to peer included, to the weights of threads', async () => {
    const { cert, key } = certificate();
    const cluster = await RemoteCluster.listen(
      { workers: 2, token: TOKEN, tls: { cert, key }, log: () => {} },
      (url) => {
        expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
        for (let i = 0; i < 2; i++)
          startWorker(url, TOKEN, ['--ca', cert, '--tls-cert', cert, '--tls-key', key]);
      },
    );
    closers.push(() => cluster.close());
    const story = formatStory(await cluster.story('worker:0', 'worker:1'));
    expect(story).toMatch(/worker:0 joined .*peers push to wss:\/\/127\.0\.0\.1:\d+/);
    expect(story).toMatch(/worker:1 joined .*peers push to wss:\/\/127\.0\.0\.1:\d+/);
    const overTls = await train(cluster, 2);

    const pool = await ThreadPool.create({ workers: 2 });
    closers.push(() => pool.close());
    const onThreads = await train(pool, 2);
    expect(overTls.losses).toEqual(onThreads.losses);
    for (const [name, value] of onThreads.variables)
      expect(Array.from(overTls.variables.get(name)!.data), name).toEqual(Array.from(value.data));
  }, 120_000);

  it('a worker that cannot verify the coordinator does not join, and says why', async () => {
    const { cert, key } = certificate();
    let worker: WorkerChild | undefined;
    const cluster = RemoteCluster.listen(
      { workers: 1, token: TOKEN, tls: { cert, key }, startTimeoutMillis: 4000, log: () => {} },
      (url) => {
        worker = startWorker(url, TOKEN, ['--no-reconnect']);
      },
    );
    await expect(cluster).rejects.toThrow(/did not become ready within 4000 ms/);
    expect(await worker!.exited).toBe(1);
    expect(worker!.stderr()).toMatch(
      /cannot connect to wss:\/\/127\.0\.0\.1:\d+: self[- ]signed certificate/,
    );
  }, 60_000);
});

describe('jobs over TLS', () => {
  it("connectJobs('wss://...', { token, ca }) submits and follows a job, and the dashboard is https", async () => {
    const { cert, key } = certificate();
    const coordinator = await JobsCoordinator.listen(
      { workers: 1, token: TOKEN, tls: { cert, key }, store: ':memory:', log: () => {} },
      (url) => void startWorker(url, TOKEN, ['--ca', cert]),
    );
    closers.push(() => coordinator.close());
    expect(coordinator.dashboardUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const jobs = await connectJobs(coordinator.url, { token: TOKEN, ca: cert, log: () => {} });
    closers.push(() => jobs.close());
    const g = new Graph();
    const x = g.placeholder('float32', [null, 1], 'x');
    const w = g.variable('w', tensor(g, [0], [1, 1]));
    g.output('loss', mean(square(sub(matmul(x, w), x))));
    const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-jobs-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const data = join(dir, 'x.safetensors');
    writeSafetensors(data, {
      x: new HostTensor('float32', [8, 1], Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8])),
    });
    const job = await jobs.submit({
      graph: g,
      loss: 'loss',
      optimizer: { kind: 'sgd', learningRate: 0.01 },
      dataset: { files: [data], feeds: { x: 'x' } },
      loop: { steps: 3, batchSize: 4, seed: 1 },
    });
    const states = [];
    for await (const e of job.events()) if (e.type === 'state') states.push(e.state);
    expect(states).toEqual(['PENDING', 'RUNNING', 'SUCCEEDED']);
    // Without the CA the client cannot verify the coordinator, and says so.
    await expect(connectJobs(coordinator.url, { token: TOKEN, log: () => {} })).rejects.toThrow(
      /certificate/,
    );
  }, 120_000);
});
