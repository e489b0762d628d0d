import { CLIENT_PROTOCOL_VERSION } from '@kiln/scheduler';
import { ClusterSession, connect, formatStory, Graph, KilnError, ThreadPool } from 'kiln-tensor';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { train } from './training.js';
import { killAll, startCoordinator, startWorker } from './worker-processes.js';

/**
 * `kiln coordinator` as its own process: workers dial it, and a program in another process
 * connects to it with `connect(url, { token })`, getting a Cluster that a ClusterSession runs on
 * exactly as on threads.
 */
const TOKEN = 'coordinator-cli-test';
const FAULTY = new URL('../../scheduler/test/fixtures/faulty-plugin.ts', import.meta.url).href;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

async function cluster(workers = 2) {
  const coordinator = startCoordinator(TOKEN, ['--workers', String(workers)]);
  const url = await coordinator.listening;
  for (let i = 0; i < workers; i++) startWorker(url, TOKEN);
  await coordinator.ready;
  return { coordinator, url };
}

describe('kiln coordinator', () => {
  it('serves a program that connects: data-parallel training bit-identical to threads, and its story', async () => {
    const { url } = await cluster();
    const client = await connect(url, { token: TOKEN, log: () => {} });
    closers.push(() => client.close());
    expect(client.names).toEqual(['worker:0', 'worker:1']);
    const remote = await train(client, 3);

    const pool = await ThreadPool.create({ workers: 2 });
    closers.push(() => pool.close());
    const local = await train(pool, 3);
    expect(remote.losses).toEqual(local.losses);
    for (const [name, value] of local.variables)
      expect(Array.from(remote.variables.get(name)!.data), name).toEqual(Array.from(value.data));

    // The coordinator's story reaches the client: who joined, where the variables live and why.
    const story = formatStory(await client.story('worker:1'));
    expect(story).toMatch(/worker:1 joined \(generation 1\): cpu device/);
    expect(story).toMatch(/variable '[^']+' lives on worker:1/);
    expect(story).toMatch(/send c0p\d+\/worker:1#\d+ of run \d+ to worker:1/);

    // The coordinator outlives its clients: a second program trains on the same workers.
    await client.close();
    const again = await connect(url, { token: TOKEN, log: () => {} });
    closers.push(() => again.close());
    const second = await train(again, 1);
    expect(second.losses[0]).toBe(local.losses[0]);
  }, 180_000);

  it('refuses clients without the token or that break the protocol, and goes on serving', async () => {
    const { url, coordinator } = await cluster(1);
    await expect(connect(url, { log: () => {} })).rejects.toThrow(/refused the token \(401\)/);
    await expect(connect(url, { token: 'wrong', log: () => {} })).rejects.toThrow(/401/);

    // Past the door, a client that sends junk is closed with a policy error; one that sends
    // another protocol's version is closed before anything is run.
    const closedWith = (send: (ws: WebSocket) => void) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${url}/client`, { headers: { authorization: `Bearer ${TOKEN}` } });
        ws.once('open', () => send(ws));
        ws.once('close', (code) => resolve(code));
        ws.once('error', reject);
      });
    expect(await closedWith((ws) => ws.send(Buffer.from([0xc1, 0xff, 0x00])))).toBe(1008);
    expect(
      await closedWith((ws) =>
        // msgpack of { t: 'hello', version: 99 }
        ws.send(
          Buffer.from([
            0x82, 0xa1, 0x74, 0xa5, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa7, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f,
            0x6e, 0x63,
          ]),
        ),
      ),
    ).toBe(1002);
    expect(coordinator.stderr()).toMatch(/refused a connection from 127\.0\.0\.1:\d+: no token/);
    expect(coordinator.stderr()).toMatch(/refused a connection from 127\.0\.0\.1:\d+: wrong token/);

    // Still serving: a proper client works.
    const client = await connect(url, { token: TOKEN, log: () => {} });
    closers.push(() => client.close());
    expect((await train(client, 1)).losses).toHaveLength(1);
  }, 120_000);

  it('refuses a flood of requests past what one client may have under way, and answers the rest', async () => {
    const { url, coordinator } = await cluster(1);
    const packr = new Packr({ useRecords: false });
    const ws = new WebSocket(`${url}/client`, { headers: { authorization: `Bearer ${TOKEN}` } });
    closers.push(async () => ws.terminate());
    const replies: { t: string; id?: number; code?: string }[] = [];
    ws.on('message', (data: Buffer) => replies.push(packr.unpack(data)));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(packr.pack({ t: 'hello', version: CLIENT_PROTOCOL_VERSION }));
    await until(() => replies.some((r) => r.t === 'welcome'));
    // 300 requests at once, each a round trip to the worker: far more than 64 are under way.
    const body = { t: 'getVariables', names: [] };
    for (let id = 0; id < 300; id++)
      ws.send(packr.pack({ t: 'request', id, worker: 'worker:0', what: 'read variables', body }));
    await until(() => replies.length === 301);
    const refused = replies.filter((r) => r.t === 'error' && r.code === 'limit');
    const answered = replies.filter((r) => r.t === 'answer');
    expect(refused.length).toBeGreaterThan(0);
    expect(answered.length).toBeGreaterThanOrEqual(64);
    expect(refused.length + answered.length).toBe(300);
    expect(coordinator.stderr()).toMatch(/refused a request over 64 under way/);
    // The same connection is served once the flood has drained.
    ws.send(packr.pack({ t: 'settle', id: 1000 }));
    await until(() => replies.some((r) => r.t === 'state' && r.id === 1000));
  }, 120_000);

  it('cancels the runs of a client that goes away, and serves the next client', async () => {
    const coordinator = startCoordinator(TOKEN, ['--workers', '1']);
    const url = await coordinator.listening;
    // The worker's device stalls 1.5 s in a node named 'boom' when fed a NaN.
    const stall = JSON.stringify({ fault: 'stall', stallMillis: 1500, trigger: 'nan' });
    startWorker(url, TOKEN, ['--device', FAULTY, '--device-options', stall]);
    await coordinator.ready;
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = g.onDevice('worker:0', () => g.apply('neg', [x], {}, 'boom')[0]!);

    const first = await connect(url, { token: TOKEN, log: () => {} });
    const session = new ClusterSession(g, first);
    expect(Array.from((await session.run(y, { x: [1, 2] })).data)).toEqual([-1, -2]);
    const stalled = session.run(y, { x: [Number.NaN, 1] }).then(
      () => null,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await first.close();
    expect(((await stalled) as KilnError).message).toMatch(/lost the coordinator at ws:\/\/127\.0\.0\.1:\d+/);

    const next = await connect(url, { token: TOKEN, log: () => {} });
    closers.push(() => next.close());
    await until(async () => /run \d+ cancelled: cancelled/.test(formatStory(await next.story())));
    expect(Array.from((await new ClusterSession(g, next).run(y, { x: [3, 4] })).data)).toEqual([-3, -4]);
  }, 120_000);

  it('errors come back to the client as KilnErrors; SIGTERM ends the coordinator cleanly', async () => {
    const { url, coordinator } = await cluster(1);
    const client = await connect(url, { token: TOKEN, log: () => {} });
    closers.push(() => client.close());
    const refused = await client.request('worker:7', { t: 'getVariables', names: [] }, 'read variables').then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(KilnError);
    expect((refused as KilnError).message).toMatch(/no worker named 'worker:7' \(workers: worker:0\)/);
    // A bad argument is refused here, and the connection stays up.
    await expect(client.execute([], 0, [new Map()], { timeoutMillis: -1 })).rejects.toThrow(
      /timeoutMillis must be a positive number of milliseconds, got -1/,
    );
    await client.settled();
    coordinator.process.kill('SIGTERM');
    expect(await coordinator.exited).toBe(0);
    await expect(client.settled()).rejects.toThrow(/lost the coordinator at ws:\/\/127\.0\.0\.1:\d+/);
  }, 120_000);
});

async function until(ok: () => boolean | Promise<boolean>, millis = 30_000): Promise<void> {
  const end = performance.now() + millis;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
