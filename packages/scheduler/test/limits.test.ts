import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CpuDevice } from '@kiln/backend-cpu';
import { add, broadcastTo, Graph, KilnError, less, mul, oneHot, sum, whileLoop } from '@kiln/ir';
import { EagerContext, Session } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';

/**
 * Limits for running graphs kiln did not write: memory per tensor and in all, loop iterations,
 * wall time, cancellation. Each refusal is a KilnError naming the limit, raised before the memory
 * is taken, and the session stays usable afterwards.
 */

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a rejection');
}

/**
 * A graph with a long loop on its fed input: at a growth of 1.0001 it ends after about 690,000
 * iterations (seconds), so a broken limit, timeout or cancellation fails its test with the wrong
 * outcome instead of spinning the test's thread forever.
 */
function spinning(growth: number) {
  const g = new Graph();
  const x = g.placeholder('float32', [], 'x');
  const [y] = whileLoop(
    g,
    [x],
    (v) => less(v, 1e30),
    (v) => [mul(v, growth)],
    { name: 'spin' },
  );
  const ok = mul(x, 2);
  return { g, y: y!, ok };
}

describe('memory limits', () => {
  it('refuses a tensor past maxTensorBytes by default, before allocating it', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [1], 'x');
    // 2 GiB + 128 KiB: within what a tensor may be, past the default one-allocation limit.
    const big = broadcastTo(x, [32768, 16385]);
    const session = new Session(g, { device: new CpuDevice() });
    const e = await rejection(session.run(sum(big), { x: [1] }));
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/broadcastTo.*needs 2 GiB, more than limits.maxTensorBytes \(2 GiB\)/);
  });

  it('refuses a huge one-hot under a lower limit, naming the node', async () => {
    const g = new Graph();
    const i = g.placeholder('int32', [2], 'i');
    const hot = g.scope('labels', () => oneHot(i, 1 << 20));
    const session = new Session(g, { device: new CpuDevice(), limits: { maxTensorBytes: 1 << 20 } });
    const e = await rejection(session.run(hot, { i: [0, 1] }));
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/oneHot.*f32\[2,1048576\].*8 MiB, more than limits.maxTensorBytes \(1 MiB\)/);
    // The session still runs what fits.
    const small = mul(i, 2);
    expect(Array.from((await session.run(small, { i: [3, 4] })).data)).toEqual([6, 8]);
  });

  it('counts all memory in use against maxDeviceBytes and gives it back when freed', () => {
    const eager = new EagerContext(new CpuDevice(), { maxDeviceBytes: 1 << 20 });
    const half = () =>
      eager.constant({ dtype: 'float32', shape: [100_000], data: new Float32Array(100_000) });
    const a = half();
    const b = half();
    const e = (() => {
      try {
        half();
      } catch (err) {
        return err as KilnError;
      }
      throw new Error('expected a limit');
    })();
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/with 781 KiB already in use, more than limits.maxDeviceBytes \(1 MiB\)/);
    a.dispose();
    const c = half();
    expect(eager.device.bytesInUse).toBe(800_000);
    b.dispose();
    c.dispose();
    expect(eager.device.bytesInUse).toBe(0);
  });
});

describe('loops, time and cancellation', () => {
  it('stops a loop at maxLoopIterations, naming the loop', async () => {
    const { g, y, ok } = spinning(1.0001);
    const session = new Session(g, { device: new CpuDevice(), limits: { maxLoopIterations: 1000 } });
    const e = await rejection(session.run(y, { x: 1 }));
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/while #\d+ 'spin'.*more than 1000 iterations \(limits.maxLoopIterations\)/);
    expect((await session.run(ok, { x: 1 })).data[0]).toBe(2);
  });

  it('stops a run past its timeout and keeps the event loop turning meanwhile', async () => {
    const { g, y, ok } = spinning(1.0001);
    const session = new Session(g, { device: new CpuDevice() });
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const started = performance.now();
    try {
      const e = await rejection(session.run(y, { x: 1 }, { timeoutMillis: 300 }));
      expect(e.code).toBe('timeout');
      expect(e.message).toMatch(/Session.run took longer than 300 ms \(set by the run's timeoutMillis\)/);
    } finally {
      clearInterval(ticker);
    }
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(ticks).toBeGreaterThan(2);
    expect((await session.run(ok, { x: 1 })).data[0]).toBe(2);
  });

  it('takes its timeout from limits.timeoutMillis too', async () => {
    const { g, y } = spinning(1.0001);
    const session = new Session(g, { device: new CpuDevice(), limits: { timeoutMillis: 100 } });
    expect((await rejection(session.run(y, { x: 1 }))).message).toMatch(/set by limits.timeoutMillis/);
  });

  it('is cancelled by an AbortSignal: before it starts, while it waits, while it runs', async () => {
    const { g, y, ok } = spinning(1.0001);
    const session = new Session(g, { device: new CpuDevice() });
    const before = new AbortController();
    before.abort();
    expect((await rejection(session.run(ok, { x: 1 }, { signal: before.signal }))).code).toBe('cancelled');

    const running = new AbortController();
    const waiting = new AbortController();
    const spin = session.run(y, { x: 1 }, { signal: running.signal });
    const queued = session.run(ok, { x: 1 }, { signal: waiting.signal });
    waiting.abort();
    expect((await rejection(queued)).code).toBe('cancelled');
    setTimeout(() => running.abort(), 100);
    expect((await rejection(spin)).message).toMatch(/Session.run was cancelled by its caller/);
    expect((await session.run(ok, { x: 1 })).data[0]).toBe(2);
  });

  it('gives up folding a hostile loop and stops it at run time, in a child process that must not hang', async () => {
    const fixture = new URL('./fixtures/run-hostile.ts', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@kiln/source', '--import', 'tsx', fixture],
      { timeout: 60_000, killSignal: 'SIGKILL' },
    );
    const out = JSON.parse(stdout) as { code: string; message: string };
    expect(out.code).toBe('limit');
    expect(out.message).toMatch(/more than 5000 iterations/);
  }, 90_000);

  it('refuses bad limits', () => {
    expect(
      () => new Session(new Graph(), { device: new CpuDevice(), limits: { maxTensorBytes: -1 } }),
    ).toThrow(/limits.maxTensorBytes must be a non-negative number, got -1/);
  });
});

describe('worker limits', () => {
  it('caps what messages may make a worker allocate, set when the worker starts', async () => {
    const pool = await ThreadPool.create({
      workers: 1,
      device: { module: '@kiln/backend-cpu' },
      limits: { maxTensorBytes: 1 << 20 },
    });
    try {
      const g = new Graph();
      const x = g.placeholder('float32', [1], 'x');
      const big = add(broadcastTo(x, [1024, 1024]), 1); // 4 MiB
      const cluster = new ClusterSession(g, pool);
      const e = await rejection(cluster.run(big, { x: [1] }));
      expect(e.message).toMatch(/more than limits.maxTensorBytes \(1 MiB\)/);
      const small = mul(x, 3);
      expect((await cluster.run(small, { x: [2] })).data[0]).toBe(6);
    } finally {
      await pool.close();
    }
  });
});
