import { type AddressInfo, connect, createServer } from 'node:net';

/**
 * The peer the all-reduce is measured against: raw TCP on loopback in this process, one sender
 * pushing `bytes` to a reader that discards them. Resolves with bytes per second.
 */
export async function rawTcpBytesPerSecond(bytes: number): Promise<number> {
  const chunk = Buffer.alloc(1 << 20, 7);
  let received = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const server = createServer((socket) => {
    socket.on('data', (d) => {
      received += d.length;
      if (received >= bytes) done();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const start = performance.now();
  let sent = 0;
  while (sent < bytes) {
    const ok = client.write(chunk);
    sent += chunk.length;
    if (!ok) await new Promise<void>((resolve) => client.once('drain', resolve));
  }
  await finished;
  const seconds = (performance.now() - start) / 1000;
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return bytes / seconds;
}
