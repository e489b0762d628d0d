import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnError, Prng } from '@kiln/ir';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeFromWorker, decodeToWorker, encodeFrame, encodeFrameParts } from '../src/cluster/codec.js';
import type { FromWorker, ToWorker } from '../src/cluster/protocol.js';
import { dial } from '../src/net/dial.js';
import { FramePool } from '../src/net/frame-pool.js';
import { CHUNK_BYTES, FrameLink, HIGH_WATER_BYTES } from '../src/net/link.js';
import { type Listening, listen } from '../src/net/server.js';

/**
 * The network layer on real sockets on 127.0.0.1: the token at the upgrade, TLS, size limits,
 * hostile frames, heartbeats and back-pressure. Every server and socket is closed after each test.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function logger() {
  const lines: string[] = [];
  return { lines, log: (line: string) => lines.push(line) };
}

/** A server whose connections become links carrying FromWorker frames to us. */
async function server(
  options: {
    token?: string;
    maxFrameBytes?: number;
    heartbeatMillis?: number;
    tls?: { cert: string; key: string };
  } = {},
) {
  const { lines, log } = logger();
  const links: FrameLink<FromWorker, ToWorker>[] = [];
  const arrived: FromWorker[] = [];
  const listening: Listening = await listen({ ...options, log }, (ws, req) => {
    const link = new FrameLink<FromWorker, ToWorker>(ws, encodeFrame, {
      peer: `peer at ${req.socket.remotePort}`,
      decode: (f) => decodeFromWorker(f, options.maxFrameBytes),
      log,
      ...(options.heartbeatMillis ? { heartbeatMillis: options.heartbeatMillis } : {}),
      ...(options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {}),
    });
    link.onMessage((m) => arrived.push(m));
    links.push(link);
  });
  cleanups.push(() => listening.close());
  return { listening, lines, links, arrived };
}

function clientLink(ws: WebSocket) {
  const got: ToWorker[] = [];
  const link = new FrameLink<ToWorker, FromWorker>(ws, encodeFrame, {
    peer: 'the server',
    decode: (f) => decodeToWorker(f),
    log: () => {},
  });
  link.onMessage((m) => got.push(m));
  cleanups.push(() => link.close('test over'));
  return { link, got };
}

const until = async (ok: () => boolean, what: string, millis = 5000) => {
  const end = performance.now() + millis;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

async function refusal(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a refusal');
}

describe('authentication', () => {
  it('lets in the right token and carries frames both ways', async () => {
    const s = await server({ token: 'sesame' });
    const { link, got } = clientLink(await dial(s.listening.url, { token: 'sesame' }));
    await link.send({ t: 'ok', request: 7 });
    await until(() => s.arrived.length === 1, 'the frame');
    expect(s.arrived[0]).toEqual({ t: 'ok', request: 7 });
    await s.links[0]!.send({ t: 'release', runs: [1, 2] });
    await until(() => got.length === 1, 'the reply');
    expect(got[0]).toEqual({ t: 'release', runs: [1, 2] });
  });

  it.each([
    ['no token', undefined, 'no token'],
    ['a wrong token', 'open', 'wrong token'],
  ])('refuses %s at the upgrade (401) and logs who knocked', async (_, token, logged) => {
    const s = await server({ token: 'sesame' });
    const e = await refusal(dial(s.listening.url, token === undefined ? {} : { token }));
    expect(e.message).toMatch(/refused the token \(401\)/);
    expect(s.lines.join('\n')).toMatch(new RegExp(`refused a connection from 127.0.0.1:\\d+: ${logged}`));
    expect(s.links).toHaveLength(0);
  });

  it('refuses to listen off loopback without a token', async () => {
    const e = await refusal(listen({ host: '0.0.0.0', log: () => {} }, () => {}));
    expect(e.message).toMatch(/refusing to listen on 0.0.0.0 without a token/);
  });
});

describe('frames with tensors', () => {
  it('takes a streamed frame into a buffer of its pool, reused once the reader gives it back', async () => {
    const frames = new FramePool();
    const { lines, log } = logger();
    const arrived: FromWorker[] = [];
    const listening = await listen({ token: 't', log }, (ws) => {
      const link = new FrameLink<FromWorker, ToWorker>(ws, encodeFrame, {
        peer: 'a peer',
        decode: (f) => decodeFromWorker(f),
        log,
        frames,
      });
      link.onMessage((m) => arrived.push(m));
    });
    cleanups.push(() => listening.close());
    const ws = await dial(listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    const link = new FrameLink<FromWorker, FromWorker>(ws, encodeFrameParts, {
      peer: 'the server',
      decode: (f) => decodeFromWorker(f),
      log: () => {},
    });
    const done = (fill: number): FromWorker => ({
      t: 'done',
      run: fill,
      partition: 'p',
      results: [{ dtype: 'float32', shape: [1 << 18], bytes: new Uint8Array(1 << 20).fill(fill) }],
      seconds: 0,
    });
    const bytesOf = (m: FromWorker) => (m.t === 'done' ? m.results[0]!.bytes : new Uint8Array());
    await link.send(done(1));
    await until(() => arrived.length === 1, 'the first frame');
    const first = bytesOf(arrived[0]!);
    expect(first.every((b) => b === 1)).toBe(true);
    frames.give(first);
    await link.send(done(2));
    await until(() => arrived.length === 2, 'the second frame');
    // The same memory, holding the second frame's bytes.
    expect(bytesOf(arrived[1]!).buffer).toBe(first.buffer);
    expect(bytesOf(arrived[1]!).every((b) => b === 2)).toBe(true);
    expect(lines).toEqual([]);
  });

  it('streams each tensor in messages of at most CHUNK_BYTES and delivers them whole, in order', async () => {
    const s = await server({ token: 't' });
    const ws = await dial(s.listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    const link = new FrameLink<FromWorker, FromWorker>(ws, encodeFrameParts, {
      peer: 'the server',
      decode: (f) => decodeFromWorker(f),
      log: () => {},
    });
    const sizes = [3, 16 * 1024 + 5, CHUNK_BYTES + 12, (5 * CHUNK_BYTES) / 2, 7, 40_001];
    const prng = new Prng(3);
    const tensor = (elements: number) => {
      const data = new Float32Array(elements).map(() => prng.normal());
      return { dtype: 'float32' as const, shape: [elements], bytes: new Uint8Array(data.buffer) };
    };
    const sent: FromWorker[] = [];
    for (let i = 0; i < 6; i++) {
      // A reply with several tensors of uneven sizes (tails and inline), then a control message.
      const results = sizes.slice(i).map((n) => tensor(Math.max(1, Math.floor(n / 4))));
      sent.push({ t: 'done', run: i, partition: `p${i}`, results, seconds: 0 });
      sent.push({ t: 'ok', request: i });
    }
    await Promise.all(sent.map((m) => link.send(m)));
    await until(() => s.arrived.length === sent.length, 'every message');
    const plain = (m: FromWorker) =>
      JSON.stringify(m, (_, v) =>
        v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : v,
      );
    expect(s.arrived.map(plain)).toEqual(sent.map(plain));
    expect(s.lines).toEqual([]);
  });
});

/** A tensor large enough to travel as a streamed tail (see TAIL_MIN_BYTES). */
const bigTensor = { dtype: 'float32' as const, shape: [8192], bytes: new Uint8Array(32768) };

describe('hostile peers', () => {
  /** A raw socket with the right token, speaking whatever the test sends. */
  async function raw(url: string) {
    const ws = await dial(url, { token: 't' });
    cleanups.push(() => ws.terminate());
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    return { ws, closed };
  }

  it.each([
    [
      'bad msgpack',
      (ws: WebSocket) => ws.send(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff)),
      1008,
      /refused a frame.*undecodable/,
    ],
    [
      'a broken tail frame',
      (ws: WebSocket) => ws.send(Uint8Array.of(0xc1, 0xff, 0x00)),
      1008,
      /refused a frame.*bad tail frame \(shorter than its prefix\)/,
    ],
    ['a text frame', (ws: WebSocket) => ws.send('hello'), 1008, /refused a frame.*text frame/],
    [
      'a message of the wrong shape',
      (ws: WebSocket) => ws.send(encodeFrame({ t: 'done', run: -1 } as never)),
      1008,
      /refused a frame.*'done' message\.\w+: expected/,
    ],
    [
      'a frame that claims a huge tensor',
      (ws: WebSocket) =>
        ws.send(
          encodeFrame({
            t: 'variables',
            request: 1,
            variables: [['w', { dtype: 'float32', shape: [1 << 30, 1 << 30], bytes: new Uint8Array(4) }]],
          }),
        ),
      1008,
      /refused a frame.*do not fill a float32\[1073741824,1073741824\]/,
    ],
    [
      'a frame with a tensor larger than the limit, streamed',
      (ws: WebSocket) => {
        // Only the head goes: it declares more than the server takes, and is refused at once.
        const [head] = encodeFrameParts({
          t: 'done',
          run: 1,
          partition: 'p',
          results: [bigTensor],
          seconds: 0,
        });
        ws.send(head!);
      },
      1008,
      /refused a frame.*a streamed frame of \d+ bytes exceeds the 1024-byte limit/,
    ],
    [
      'an oversize frame',
      (ws: WebSocket) => ws.send(new Uint8Array(4096)),
      1009,
      /failed: Max payload size exceeded/,
    ],
  ])('drops a peer that sends %s, logs it, and serves the others', async (_, send, code, logged) => {
    const s = await server({ token: 't', maxFrameBytes: 1024 });
    const good = clientLink(await dial(s.listening.url, { token: 't' }));
    const bad = await raw(s.listening.url);
    send(bad.ws);
    expect(await bad.closed).toBe(code);
    await until(() => s.lines.some((l) => logged.test(l)), 'the log line');
    await good.link.send({ t: 'ok', request: 1 });
    await until(() => s.arrived.length === 1, 'the good peer');
  });

  it('drops a peer whose streamed frame runs past the length its head declared', async () => {
    const s = await server({ token: 't' });
    const bad = await raw(s.listening.url);
    const [head, ...rest] = encodeFrameParts({
      t: 'done',
      run: 1,
      partition: 'p',
      results: [bigTensor],
      seconds: 0,
    });
    // The head, then its tensor's bytes with 8 more than it declared, in one message.
    bad.ws.send(head!);
    bad.ws.send(Buffer.concat([...rest, new Uint8Array(8)]));
    expect(await bad.closed).toBe(1008);
    await until(
      () => s.lines.some((l) => /a streamed frame ran past the \d+ bytes its head declared/.test(l)),
      'the log line',
    );
    expect(s.arrived).toHaveLength(0);
  });

  it('declares a peer dead after three unanswered heartbeats', async () => {
    const s = await server({ token: 't', heartbeatMillis: 100 });
    const ws = new WebSocket(s.listening.url, { headers: { authorization: 'Bearer t' }, autoPong: false });
    cleanups.push(() => ws.terminate());
    await new Promise((resolve) => ws.once('open', resolve));
    await until(() => s.links.length === 1, 'the link');
    let reason = '';
    s.links[0]!.onClose((r) => {
      reason = r;
    });
    await until(() => reason !== '', 'the heartbeat verdict', 3000);
    expect(reason).toMatch(/answered no heartbeat for 300 ms \(heartbeatMillis 100 x 3\)/);
  });

  it('does not count the time this side was blocked as the peer being silent', async () => {
    const s = await server({ token: 't', heartbeatMillis: 100 });
    // A peer that never answers: only this side's blocked time stands between it and the verdict.
    const ws = new WebSocket(s.listening.url, { headers: { authorization: 'Bearer t' }, autoPong: false });
    cleanups.push(() => ws.terminate());
    await new Promise((resolve) => ws.once('open', resolve));
    await until(() => s.links.length === 1, 'the link');
    let closedAt = 0;
    s.links[0]!.onClose(() => {
      closedAt = performance.now();
    });
    // This thread stops for a second (as under a long synchronous task): its timers fire late.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    const resumed = performance.now();
    await until(() => closedAt !== 0, 'the heartbeat verdict', 3000);
    // Judged on the silence it could hear (300 ms), not on the second it slept through.
    expect(closedAt - resumed).toBeGreaterThan(200);
  });

  it('slows a sender to a reader that does not read, instead of buffering without bound', async () => {
    const s = await server({ token: 't' });
    const ws = await dial(s.listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    await until(() => s.links.length === 1, 'the link');
    // The reader stops reading its socket; the server sends 64 MiB in 1 MiB tensors.
    (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const link = s.links[0]!;
    const tensor = { dtype: 'float32' as const, shape: [1 << 18], bytes: new Uint8Array(1 << 20) };
    let sent = 0;
    const sending = (async () => {
      for (let i = 0; i < 64; i++) {
        await link.send({ t: 'variables', request: i, variables: [['w', tensor]] } as never);
        sent++;
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const buffered = (link as unknown as { ws: WebSocket }).ws.bufferedAmount;
    expect(sent).toBeLessThan(64);
    expect(buffered).toBeLessThanOrEqual(HIGH_WATER_BYTES + (2 << 20));
    let received = 0;
    ws.on('message', () => received++);
    (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await sending;
    await until(() => received === 64, 'every frame');
  });
});

describe('sending memory in place', () => {
  it('resolves a send only once the socket has taken the bytes, so the sender may reuse them', async () => {
    const s = await server({ token: 't' });
    const ws = await dial(s.listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    await until(() => s.links.length === 1, 'the link');
    const link = s.links[0]!;
    const queued = () => (link as unknown as { ws: WebSocket }).ws.bufferedAmount;
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    const arrivals: Buffer[] = [];
    ws.on('message', (d) => arrivals.push(d as Buffer));
    // The reader stops reading; fillers go out until the kernel's buffers are full and bytes
    // wait in the sender's own queue.
    socket.pause();
    const filler = { dtype: 'float32' as const, shape: [1 << 18], bytes: new Uint8Array(1 << 20) };
    let fillers = 0;
    while (queued() === 0) {
      void link.send({ t: 'variables', request: fillers++, variables: [['f', filler]] } as never);
      await new Promise((r) => setImmediate(r));
    }
    // This one is queued behind them: it must not count as sent while its bytes wait there.
    const bytes = new Uint8Array(2 << 20).map((_, i) => i % 251);
    const tensor = { dtype: 'float32' as const, shape: [bytes.byteLength / 4], bytes };
    let sent = false;
    const sending = link
      .send({ t: 'variables', request: 1e6, variables: [['w', tensor]] } as never)
      .then(() => {
        sent = true;
        // The memory is the sender's again: what it writes now must not reach the reader.
        bytes.fill(255);
      });
    await new Promise((r) => setTimeout(r, 200));
    expect(sent).toBe(false);
    socket.resume();
    await sending;
    await until(() => arrivals.length === fillers + 1, 'every frame');
    const frame = decodeFromWorker(new Uint8Array(arrivals.at(-1)!)) as unknown as {
      variables: [string, { bytes: Uint8Array }][];
    };
    const got = frame.variables[0]![1].bytes;
    expect(got.byteLength).toBe(2 << 20);
    expect(got.every((x, i) => x === i % 251)).toBe(true);
  });
});

describe('writes', () => {
  it('hands what one tick sends to the socket in one write, in order', async () => {
    const s = await server({ token: 't' });
    const ws = await dial(s.listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    const { link } = clientLink(ws);
    // Every write the stream hands the kernel goes through _write (one chunk) or _writev (several).
    const socket = (ws as unknown as { _socket: Record<string, (...a: unknown[]) => unknown> })._socket;
    let writes = 0;
    for (const method of ['_write', '_writev'] as const) {
      const original = socket[method]!;
      socket[method] = function (this: unknown, ...args: unknown[]) {
        writes++;
        return original.apply(this, args);
      };
    }
    const sent: FromWorker[] = Array.from({ length: 20 }, (_, i) => ({ t: 'ok', request: i }));
    await Promise.all(sent.map((m) => link.send(m)));
    expect(writes).toBe(1);
    // The next tick's messages go in a write of their own.
    await link.send({ t: 'ok', request: 99 });
    expect(writes).toBe(2);
    await until(() => s.arrived.length === 21, 'every message');
    expect(s.arrived).toEqual([...sent, { t: 'ok', request: 99 }]);
  });

  it('refuses a message it cannot encode and sends the ones around it', async () => {
    const s = await server({ token: 't' });
    const ws = await dial(s.listening.url, { token: 't' });
    cleanups.push(() => ws.terminate());
    const link = new FrameLink<ToWorker, FromWorker>(
      ws,
      (m) => {
        if (m.t === 'ok' && m.request === 2)
          throw new KilnError('invalid-argument', 'cannot encode this one');
        return encodeFrame(m);
      },
      { peer: 'the server', decode: (f) => decodeToWorker(f), log: () => {} },
    );
    cleanups.push(() => link.close('test over'));
    const first = link.send({ t: 'ok', request: 1 });
    const bad = refusal(link.send({ t: 'ok', request: 2 }));
    const last = link.send({ t: 'ok', request: 3 });
    expect((await bad).message).toBe('cannot encode this one');
    await Promise.all([first, last]);
    await until(() => s.arrived.length === 2, 'both messages');
    expect(s.arrived).toEqual([
      { t: 'ok', request: 1 },
      { t: 'ok', request: 3 },
    ]);
  });
});

describe('TLS', () => {
  it('serves wss:// with a certificate, verified against a CA file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const s = await server({ token: 't', tls: { cert, key } });
    expect(s.listening.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const { link } = clientLink(await dial(s.listening.url, { token: 't', ca: cert }));
    await link.send({ t: 'ok', request: 3 });
    await until(() => s.arrived.length === 1, 'the frame over TLS');
    // Without the CA the certificate is not trusted.
    expect((await refusal(dial(s.listening.url, { token: 't' }))).message).toMatch(/self[- ]signed/);
  });
});
