import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JOBS_PROTOCOL_VERSION } from '@kiln/scheduler/jobs';
import { add, Graph, HostTensor, matmul, mean, square, sub, tensor } from 'kiln-tensor';
import { connectJobs, JobsCoordinator, writeSafetensors } from 'kiln-tensor/jobs';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAll, startWorker } from './worker-processes.js';

/**
 * The jobs API against a coordinator's port, as a program on another machine uses it
 * (`connectJobs(url, { token })`), and the port's jobs path against clients that break the
 * protocol: each is cut off or refused, and the coordinator goes on serving the others.
 */
const TOKEN = 'jobs-remote-test';
let coordinator: JobsCoordinator;
let dir: string;
let data: string;
const packr = new Packr({ useRecords: false });

function spec(loop: object, extra: object = {}) {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 2], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', tensor(g, [0, 0], [2, 1]));
  const b = g.variable('b', tensor(g, [0], [1]));
  g.output('loss', mean(square(sub(add(matmul(x, w), b), y))));
  return {
    name: 'remote',
    graph: g,
    loss: 'loss',
    optimizer: { kind: 'sgd', learningRate: 0.1 },
    dataset: { files: [data], feeds: { x: 'x', y: 'y' } },
    loop,
    ...extra,
  };
}

/** A raw WebSocket on the jobs path, with the token; resolves once open. */
async function raw(): Promise<{ ws: WebSocket; closed: Promise<number>; next: () => Promise<unknown> }> {
  const ws = new WebSocket(`${coordinator.url}/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const inbox: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  ws.on('message', (d: Buffer) => {
    const m = packr.unpack(d);
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    closed,
    next: () =>
      inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve)),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-jobs-remote-'));
  data = join(dir, 'data.safetensors');
  const xs = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i));
  const ys = Float32Array.from({ length: 64 }, (_, r) => 2 * xs[r * 2]! - xs[r * 2 + 1]!);
  writeSafetensors(data, {
    x: new HostTensor('float32', [64, 2], xs),
    y: new HostTensor('float32', [64, 1], ys),
  });
  coordinator = await JobsCoordinator.listen(
    { workers: 1, token: TOKEN, store: ':memory:', log: () => {} },
    (url) => void startWorker(url, TOKEN),
  );
}, 120_000);
afterAll(async () => {
  await coordinator?.close();
  await killAll();
  await rm(dir, { recursive: true, force: true });
});

describe('connectJobs', () => {
  it('submits, follows, lists, reads metrics and cancels over the socket', async () => {
    const jobs = await connectJobs(coordinator.url, { token: TOKEN, log: () => {} });
    try {
      const job = await jobs.submit(spec({ steps: 8, batchSize: 16, seed: 2 }));
      const kinds = [];
      for await (const e of job.events()) kinds.push(e.type === 'state' ? e.state : e.type);
      expect(kinds[0]).toBe('PENDING');
      expect(kinds.at(-1)).toBe('SUCCEEDED');
      expect(kinds).toContain('progress');
      const result = await job.result();
      expect(result.steps).toBe(8);
      expect((await job.metric('loss')).map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await jobs.list()).map((j) => j.id)).toContain(job.id);

      // A bad spec is refused before it leaves the client, every bad field named.
      await expect(jobs.submit(spec({ steps: 1, batchSize: 0, seed: 1 }))).rejects.toThrow(
        'loop.batchSize: must be an integer >= 1; got 0',
      );
      // Following a job that does not exist: the coordinator says so, and the socket stays up.
      await expect(jobs.job('999').status()).rejects.toThrow("no job '999'");
      const follow = jobs.job('999').events();
      await expect(follow[Symbol.asyncIterator]().next()).rejects.toThrow("no job '999'");

      const long = await jobs.submit(spec({ steps: 1_000_000, batchSize: 16, seed: 2 }));
      for await (const e of long.events()) if (e.type === 'progress') break;
      await long.cancel();
      await expect(long.result()).rejects.toMatchObject({ code: 'cancelled' });
    } finally {
      await jobs.close();
    }
  }, 120_000);
});

describe("the jobs path of a coordinator's port", () => {
  it('refuses a client without the token', async () => {
    await expect(connectJobs(coordinator.url, { log: () => {} })).rejects.toThrow(
      /refused the token \(401\)/,
    );
  });

  it('cuts off clients that break the protocol, and goes on serving', async () => {
    // Not msgpack at all: a frame that does not decode is a policy violation (1008).
    const garbage = await raw();
    garbage.ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13]));
    expect(await garbage.closed).toBe(1008);
    // A message before the greeting, then one of another protocol version: a protocol error (1002).
    const early = await raw();
    early.ws.send(packr.pack({ t: 'list', id: 1 }));
    expect(await early.closed).toBe(1002);
    const version = await raw();
    version.ws.send(packr.pack({ t: 'hello', version: 99 }));
    expect(await version.closed).toBe(1002);
    // A greeted client sends an unknown message type: it does not decode, cut off.
    const unknown = await raw();
    unknown.ws.send(packr.pack({ t: 'hello', version: JOBS_PROTOCOL_VERSION }));
    expect(await unknown.next()).toEqual({ t: 'welcome', version: JOBS_PROTOCOL_VERSION });
    unknown.ws.send(packr.pack({ t: 'rm -rf', id: 2 }));
    expect(await unknown.closed).toBe(1008);

    // A well-formed request with a spec the coordinator cannot read is refused; the socket stays.
    const bad = await raw();
    bad.ws.send(packr.pack({ t: 'hello', version: JOBS_PROTOCOL_VERSION }));
    await bad.next();
    bad.ws.send(packr.pack({ t: 'submit', id: 7, spec: new Uint8Array([1, 2, 3]) }));
    const refused = (await bad.next()) as { t: string; id: number; message: string };
    expect(refused).toMatchObject({ t: 'error', id: 7 });
    bad.ws.send(
      packr.pack({ t: 'submit', id: 8, spec: packr.pack({ name: 'x', graph: new Uint8Array([9]) }) }),
    );
    expect(await bad.next()).toMatchObject({ t: 'error', id: 8, code: 'invalid-argument' });
    bad.ws.send(packr.pack({ t: 'list', id: 9 }));
    expect(await bad.next()).toMatchObject({ t: 'jobs', id: 9 });
    bad.ws.close();

    // And a well-behaved client is served as before.
    const jobs = await connectJobs(coordinator.url, { token: TOKEN, log: () => {} });
    const job = await jobs.submit(spec({ steps: 2, batchSize: 16, seed: 1 }));
    expect((await job.result()).steps).toBe(2);
    await jobs.close();
  }, 120_000);
});
