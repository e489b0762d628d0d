import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatStory, RemoteCluster, ThreadPool } from 'kiln-tensor';
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
