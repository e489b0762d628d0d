import type { AddressInfo } from 'node:net';
import { PROTOCOL_VERSION, RemoteCluster } from 'kiln-tensor';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { killAll, startWorker, type WorkerChild } from './worker-processes.js';

/** `kiln worker` as an operator sees it: its ready line, its signals, its refusals. */

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await killAll();
});

async function cluster(token: string) {
  const lines: string[] = [];
  let worker: WorkerChild | null = null;
  const c = await RemoteCluster.listen({ workers: 1, token, log: (l) => lines.push(l) }, (url) => {
    worker = startWorker(url, token);
  });
  closers.push(() => c.close());
  return { c, lines, worker: worker as unknown as WorkerChild };
}

describe('kiln worker', () => {
  it('prints one ready line naming itself, and exits 0 on SIGTERM and on SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const { worker } = await cluster('t');
      expect(await worker.ready).toBe('worker:0');
      // With the addresses it uses: the coordinator it dialed, and the port it bound for peers.
      expect(worker.stdout()).toMatch(
        /^kiln worker ready: worker:0 serving @kiln\/backend-cpu, connected to ws:\/\/127\.0\.0\.1:\d+, peers at ws:\/\/127\.0\.0\.1:\d+\n$/,
      );
      worker.process.kill(signal);
      expect(await worker.exited).toBe(0);
      expect(worker.stderr()).toMatch(new RegExp(`${signal}: shutting down`));
      await closers.pop()!();
    }
  }, 60_000);

  it('takes its options from KILN_* variables', async () => {
    // startWorker passes the token as KILN_TOKEN: a worker that connects has read it.
    const { c } = await cluster('from-the-environment');
    expect(c.names).toEqual(['worker:0']);
  }, 60_000);

  it('exits non-zero with a message on a wrong token, and the coordinator logs the knock', async () => {
    const { c, lines } = await cluster('right');
    const w = startWorker(c.url, 'wrong');
    expect(await w.exited).toBe(1);
    expect(w.stderr()).toMatch(
      /kiln: cannot connect to ws:\/\/127\.0\.0\.1:\d+: the server refused the token \(401\)/,
    );
    expect(lines.join('\n')).toMatch(/refused a connection from 127\.0\.0\.1:\d+: wrong token/);
  }, 60_000);

  it('exits non-zero, naming both versions, when the coordinator speaks another protocol', async () => {
    // A coordinator of a later version: it greets the worker with its version, as the real one
    // does, and closes the connection when the worker refuses (as the real one does).
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    await new Promise((resolve) => server.once('listening', resolve));
    const packr = new Packr({ useRecords: false });
    let connections = 0;
    server.on('connection', (ws) => {
      connections++;
      ws.send(packr.pack({ t: 'hello', version: PROTOCOL_VERSION + 1, worker: 'worker:0' }));
      ws.on('message', () => ws.close(1011, 'worker failed to start'));
    });
    const { port } = server.address() as AddressInfo;
    const w = startWorker(`ws://127.0.0.1:${port}`, 't');
    expect(await w.exited).toBe(1);
    expect(w.stderr()).toMatch(
      new RegExp(
        `protocol version ${PROTOCOL_VERSION + 1} is not supported \\(this worker speaks ${PROTOCOL_VERSION}\\)`,
      ),
    );
    // Refused once, it does not come back: another try would be refused the same way.
    expect(connections).toBe(1);
  }, 60_000);

  it('exits non-zero, naming the option, on a bad option', async () => {
    const w = startWorker('ws://127.0.0.1:1', 't', ['--max-tensor-bytes', 'lots']);
    expect(await w.exited).toBe(1);
    expect(w.stderr()).toMatch(/--max-tensor-bytes takes a non-negative integer/);
  }, 60_000);
});
