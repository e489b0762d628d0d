import { ClusterSession, Graph, mul, PROTOCOL_VERSION, RemoteCluster, RUN_LINK_PATH } from 'kiln-tensor';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAll, startWorker } from './worker-processes.js';

/**
 * A peer that has the cluster's token but floods a worker's data-plane port with values no
 * partition will read. The worker must not hold them without bound nor let them crowd out its
 * real peers: past the bound, that connection is cut and what it sent is dropped, in one log line,
 * and the worker goes on serving its cluster.
 */
const TOKEN = 'hostile-peer-test';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

describe('a process that dials in as a worker and is not one', () => {
  it('is turned away with a log line, and its name goes to the next worker to connect', async () => {
    const lines: string[] = [];
    const packr = new Packr({ useRecords: false });
    let impostor: WebSocket | undefined;
    let worker: ReturnType<typeof startWorker> | undefined;
    const cluster = await RemoteCluster.listen(
      { workers: 1, token: TOKEN, log: (l) => lines.push(l) },
      (url) => {
        // It has the token, answers the greeting, but with another protocol's version.
        impostor = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
        impostor.on('message', (data: Buffer) => {
          const hello = packr.unpack(data) as { t: string; worker: string };
          if (hello.t !== 'hello') return;
          const device = {
            name: 'fake',
            kind: 'cpu',
            info: { flopsPerSecond: 1, bytesPerSecond: 1 },
            ops: [],
          };
          impostor!.send(packr.pack({ t: 'ready', version: 99, worker: hello.worker, device }));
          // The real worker comes after.
          worker = startWorker(url, TOKEN);
        });
      },
    );
    closers.push(() => cluster.close());
    closers.push(async () => impostor?.terminate());
    expect(await worker!.ready).toBe('worker:0');
    expect(
      lines.some((l) =>
        /turned away worker at 127\.0\.0\.1:\d+ as worker:0: it speaks protocol version 99/.test(l),
      ),
    ).toBe(true);
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = g.onDevice('worker:0', () => mul(x, 3));
    expect(Array.from((await new ClusterSession(g, cluster).run(y, { x: [1, 2] })).data)).toEqual([3, 6]);
  }, 120_000);
});

describe("a connection to the run-link path that is no worker's run link", () => {
  it.each([
    [
      'a key no worker was given',
      { t: 'attach', worker: 'worker:0', key: 'guessed' },
      /no worker was given its key \(it claims to be worker:0\)/,
    ],
    ['a message other than an attach', { t: 'ok', request: 1 }, /its first message was 'ok', not an attach/],
  ])(
    'presenting %s is refused with a log line, and the worker it names keeps serving',
    async (_, first, logged) => {
      const lines: string[] = [];
      let worker: ReturnType<typeof startWorker> | undefined;
      const cluster = await RemoteCluster.listen(
        { workers: 1, token: TOKEN, log: (l) => lines.push(l) },
        (url) => {
          worker = startWorker(url, TOKEN);
        },
      );
      closers.push(() => cluster.close());
      await worker!.ready;

      const packr = new Packr({ useRecords: false });
      const ws = new WebSocket(new URL(RUN_LINK_PATH, cluster.url).href, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      closers.push(async () => ws.terminate());
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.send(packr.pack(first));
      expect(await closed).toBe(1008);
      expect(lines.some((l) => /refused run link at 127\.0\.0\.1:\d+: /.test(l) && logged.test(l))).toBe(
        true,
      );

      const g = new Graph();
      const x = g.placeholder('float32', [2], 'x');
      const y = g.onDevice('worker:0', () => mul(x, 5));
      expect(Array.from((await new ClusterSession(g, cluster).run(y, { x: [1, 2] })).data)).toEqual([5, 10]);
    },
    120_000,
  );
});

describe('a flooding peer', () => {
  it('is cut off past the bound on held values, its values dropped, and the worker keeps serving', async () => {
    let worker: ReturnType<typeof startWorker> | undefined;
    const cluster = await RemoteCluster.listen({ workers: 1, token: TOKEN, log: () => {} }, (url) => {
      worker = startWorker(url, TOKEN);
    });
    closers.push(() => cluster.close());
    await worker!.ready;
    const peerUrl = /peers at (\S+)/.exec(worker!.stdout())![1]!;

    const packr = new Packr({ useRecords: false });
    const ws = new WebSocket(peerUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    closers.push(async () => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(packr.pack({ t: 'peer', version: PROTOCOL_VERSION, from: 'flooder' }));
    // Empty tensors under distinct keys of runs that will never exist: no bytes, only count.
    const empty = { dtype: 'float32', shape: [0], bytes: new Uint8Array(0) };
    for (let i = 0; i < 70_000 && ws.readyState === WebSocket.OPEN; i++)
      ws.send(packr.pack({ t: 'tensor', run: 1_000_000 + i, key: `k${i}`, tensor: empty }));
    expect(await closed).toBe(1008);
    await until(() =>
      /closed peer at 127\.0\.0\.1:\d+: 65536 values pushed here are not yet read; dropped the 65536 values it sent/.test(
        worker!.stderr(),
      ),
    );
    // One line for the whole flood, not one per value.
    expect(
      worker!
        .stderr()
        .split('\n')
        .filter((l) => /values pushed here/.test(l)),
    ).toHaveLength(1);

    // The worker still runs what its coordinator sends.
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const y = g.onDevice('worker:0', () => mul(x, 2));
    const session = new ClusterSession(g, cluster);
    expect(Array.from((await session.run(y, { x: [1, 2, 3] })).data)).toEqual([2, 4, 6]);
  }, 120_000);
});

async function until(ok: () => boolean, millis = 30_000): Promise<void> {
  const end = performance.now() + millis;
  while (!ok()) {
    if (performance.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
