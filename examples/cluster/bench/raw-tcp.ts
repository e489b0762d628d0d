import { fork } from 'node:child_process';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/**
 * The peers the all-reduce is measured against: raw TCP on loopback, no kiln code, in this same
 * script. A ring all-reduce over N workers keeps N links busy at once, each carrying
 * 2(N-1)/N of the bucket, so its fair peer is raw TCP with that same traffic: N processes in a
 * ring, each streaming to the next while the one before streams to it. On a machine with fewer
 * cores than the ring has processes, that is far below one lone stream, and the lone stream is
 * measured too, for reference.
 */

const CHUNK = 1 << 20;

/** Writes `bytes` to the socket in 1 MiB writes, waiting for it to drain when it is full. */
async function stream(socket: Socket, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(CHUNK, 7);
  for (let sent = 0; sent < bytes; sent += CHUNK)
    if (!socket.write(chunk)) await new Promise<void>((resolve) => socket.once('drain', resolve));
}

/** A listening server that resolves `received` once `bytes` have arrived on any one connection. */
async function sink(bytes: number) {
  let done: () => void = () => {};
  const received = new Promise<void>((resolve) => {
    done = resolve;
  });
  const server = createServer((socket) => {
    let n = 0;
    socket.on('data', (d) => {
      n += d.length;
      if (n >= bytes) done();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, received };
}

const dialed = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });

/** One stream in this process, sender and reader on one thread: bytes per second. */
export async function rawTcpBytesPerSecond(bytes: number): Promise<number> {
  const { server, port, received } = await sink(bytes);
  const client = await dialed(port);
  const start = performance.now();
  await stream(client, bytes);
  await received;
  const seconds = (performance.now() - start) / 1000;
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return bytes / seconds;
}

/** Messages between this script and its ring members. */
type RingMessage =
  | { readonly t: 'listening'; readonly port: number }
  | { readonly t: 'next'; readonly port: number }
  | { readonly t: 'connected' }
  | { readonly t: 'go' }
  | { readonly t: 'done' };

/**
 * N processes in a ring on loopback, each streaming `bytes` to the next while receiving as many
 * from the one before: the bytes per second of one link while every link is busy (the slowest
 * link's, timed from the start signal to the last byte received anywhere).
 */
export async function rawTcpRingBytesPerSecond(processes: number, bytes: number): Promise<number> {
  const members = Array.from({ length: processes }, () =>
    fork(new URL(import.meta.url).pathname, ['ring-member', String(bytes)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const next = (i: number, t: RingMessage['t']) =>
    new Promise<RingMessage>((resolve, reject) => {
      const m = members[i]!;
      const onMessage = (message: RingMessage) => {
        if (message.t !== t) return;
        m.off('message', onMessage);
        resolve(message);
      };
      m.on('message', onMessage);
      m.once('exit', (code) => reject(new Error(`ring member ${i} exited (${code})`)));
    });
  try {
    const ports = await Promise.all(members.map((_, i) => next(i, 'listening')));
    const connected = members.map((_, i) => next(i, 'connected'));
    members.forEach((m, i) => {
      m.send({ t: 'next', port: (ports[(i + 1) % processes] as { port: number }).port });
    });
    await Promise.all(connected);
    const done = members.map((_, i) => next(i, 'done'));
    const start = performance.now();
    for (const m of members) m.send({ t: 'go' });
    await Promise.all(done);
    return bytes / ((performance.now() - start) / 1000);
  } finally {
    for (const m of members) m.kill();
  }
}

/** A ring member: receives on its own port, streams to the next member's when told to go. */
async function ringMember(bytes: number): Promise<void> {
  const send = (m: RingMessage) => process.send!(m);
  const { port, received } = await sink(bytes);
  let out: Socket | null = null;
  process.on('message', async (m: RingMessage) => {
    if (m.t === 'next') {
      out = await dialed(m.port);
      send({ t: 'connected' });
    } else if (m.t === 'go' && out) {
      await Promise.all([stream(out, bytes), received]);
      send({ t: 'done' });
    }
  });
  send({ t: 'listening', port });
}

if (process.argv[2] === 'ring-member') await ringMember(Number(process.argv[3]));
