import { execFile } from 'node:child_process';
import { type BufferView, Graph, KilnError } from '@kiln/ir';
import { singleOpSubgraph } from '@kiln/ir/conformance';
import { EagerContext, Session } from '@kiln/scheduler';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newDevice, noAdapter } from './gpu.js';

const fixture = new URL('./fixtures/dispose-pending.ts', import.meta.url).pathname;
/** The child runs in about two seconds; a hang (Dawn torn down under a callback) must still end. */
const CHILD_LIMIT_MS = 60_000;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runFixture(mode: 'await' | 'leave'): Promise<Exit> {
  return new Promise((resolve) => {
    const args = ['--expose-gc', '--conditions=@kiln/source', '--import', 'tsx', fixture, mode];
    const child = execFile(process.execPath, args, { timeout: CHILD_LIMIT_MS }, (_, stdout, stderr) =>
      resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr }),
    );
  });
}

/** What a failed child did, for the assertion message: exit code or signal, and its output. */
const describeExit = (e: Exit) =>
  `exit ${e.code ?? `by ${e.signal}${e.signal === 'SIGTERM' ? ` (hung past ${CHILD_LIMIT_MS} ms)` : ''}`}\n${e.stdout}\n${e.stderr}`;

const view = (buffer: BufferView['buffer'], shape: number[]): BufferView => ({
  buffer,
  byteOffset: 0,
  dtype: 'float32',
  shape,
});

/** Rejections nobody handled, heard while a test ran and for a moment after. */
const unhandled: unknown[] = [];
const hear = (reason: unknown) => unhandled.push(reason);

describe.skipIf(noAdapter !== null)(
  `disposing a WebGPU device with work in flight${noAdapter ? ` (skipped: ${noAdapter})` : ''}`,
  () => {
    beforeEach(() => {
      unhandled.length = 0;
      process.on('unhandledRejection', hear);
    });
    afterEach(async () => {
      // Rejections are reported after the microtasks drain; give them a few turns of the loop.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      process.off('unhandledRejection', hear);
      expect(unhandled.map(String)).toEqual([]);
    });

    it('in its own process: an eager read in flight rejects naming the tensor, and the process exits cleanly', async () => {
      const exit = await runFixture('await');
      expect(exit.code, describeExit(exit)).toBe(0);
      expect(exit.stderr).not.toMatch(/unhandledRejection/);
      const lines = exit.stdout.trim().split('\n');
      expect(lines.at(-1)).toBe('done');
      const outcome = JSON.parse(lines.at(-2)!) as { name: string; code: string; message: string };
      expect(outcome).toMatchObject({ name: 'KilnError', code: 'cancelled' });
      expect(outcome.message).toMatch(/^reading tensor #\d+ \(f32\[3\] on webgpu:0\): /);
      expect(outcome.message).toMatch(/dispose-pending\.ts:\d+:\d+/);
      expect(outcome.message).toMatch(/the device was disposed$/);
    }, 90_000);

    it('in its own process: left unawaited, nothing is an unhandled rejection, and the process exits 0', async () => {
      const exit = await runFixture('leave');
      expect(exit.code, describeExit(exit)).toBe(0);
      expect(exit.stderr).not.toMatch(/unhandledRejection/);
      expect(exit.stdout.trim()).toBe('done');
    }, 90_000);

    it('rejects each read, write, compile and run in flight with a KilnError naming it', async () => {
      const device = await newDevice();
      const buffer = device.allocate(16);
      const out = device.allocate(16);
      await device.write(buffer, 0, new Float32Array([1, 2, 3, 4]));
      const exe = await device.compile(singleOpSubgraph('exp', [{ dtype: 'float32', shape: [4] }], {}));
      const inFlight = {
        read: device.read(buffer, 4, 8),
        write: device.write(buffer, 1, Uint8Array.from([1, 2, 3])),
        compile: device.compile(singleOpSubgraph('tanh', [{ dtype: 'float32', shape: [4] }], {})),
        run: exe.run([view(buffer, [4])], [view(out, [4])]),
      };
      expect(device.pendingWork).toHaveLength(4);
      device.dispose();
      expect(device.pendingWork).toEqual([]);
      const errors = await Promise.all(
        Object.values(inFlight).map((p) =>
          p.then(
            () => null,
            (e) => e,
          ),
        ),
      );
      for (const e of errors) {
        expect(e).toBeInstanceOf(KilnError);
        expect((e as KilnError).code).toBe('cancelled');
      }
      expect(errors.map((e) => (e as KilnError).message)).toEqual([
        'webgpu:0: reading 8 bytes at byte 4 (still pending): the device was disposed',
        'webgpu:0: writing 3 bytes at byte 1 (still pending): the device was disposed',
        "webgpu:0: compiling node #1 (tanh 'tanh') (still pending): the device was disposed",
        "webgpu:0: running node #1 (exp 'exp') (still pending): the device was disposed",
      ]);
      // Later calls fail the same way at once; releasing memory afterwards is quiet.
      await expect(device.read(buffer, 0, 4)).rejects.toThrow(
        'webgpu:0: reading 4 bytes at byte 0: the device was disposed',
      );
      expect(() => device.allocate(4)).toThrow(/allocate: the device was disposed/);
      device.free(buffer);
      exe.dispose();
    });

    it('leaves nothing unhandled when nobody awaits the work it cancels', async () => {
      const device = await newDevice();
      const buffer = device.allocate(16);
      void device.read(buffer, 0, 16);
      void device.write(buffer, 2, Uint8Array.from([7]));
      void device.compile(singleOpSubgraph('neg', [{ dtype: 'float32', shape: [4] }], {}));
      const ctx = new EagerContext(device);
      const t = ctx.constant({ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) });
      const [u] = ctx.apply('exp', [t], {});
      void u!.data();
      void u!.array();
      device.dispose();
      void device.read(buffer, 0, 4);
      u!.dispose();
      t.dispose();
      // afterEach hears any unhandled rejection.
    });

    it('rejects an eager read in flight naming the tensor, the op and its line', async () => {
      const device = await newDevice();
      const ctx = new EagerContext(device);
      const t = ctx.constant({ dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) });
      await t.data();
      const [u] = ctx.apply('exp', [t], {});
      const read = u!.data();
      device.dispose();
      const error = await read.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).code).toBe('cancelled');
      expect((error as KilnError).message).toMatch(
        /^reading tensor #\d+ \(f32\[3\] on webgpu:0\): exp \(at [^)]*dispose\.test\.ts:\d+:\d+\): webgpu:0: .*the device was disposed$/,
      );
    });

    it('rejects a Session run in flight as cancelled; closing the session still works', async () => {
      const device = await newDevice();
      const g = new Graph();
      const x = g.placeholder('float32', [2], 'x');
      const y = g.output('y', g.apply('tanh', [x], {})[0]!);
      const session = new Session(g, { device });
      const run = session.run(y, { x: [0.5, -1] });
      const unawaited = session.run(y, { x: [1, 2] });
      device.dispose();
      await expect(run).rejects.toMatchObject({ code: 'cancelled', message: /the device was disposed/ });
      await session.close();
      void unawaited;
    });

    it('rejects reads in flight on a lost device with runtime KilnErrors naming them', async () => {
      const device = await newDevice();
      const buffer = device.allocate(64);
      await device.write(buffer, 0, new Uint8Array(64));
      const reads = [0, 16, 32].map((at) => device.read(buffer, at, 16));
      // Lost, not disposed: nobody asked for it, so this is a runtime failure (WebGPU aborts the
      // maps of a destroyed device before they can deliver).
      device.gpuDevice.destroy();
      const errors = await Promise.all(
        reads.map((p) =>
          p.then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      );
      expect(errors.map((e) => (e instanceof KilnError ? e.code : e))).toEqual([
        'runtime',
        'runtime',
        'runtime',
      ]);
      errors.forEach((e, i) =>
        expect((e as KilnError).message).toMatch(
          new RegExp(
            `^webgpu:0: reading 16 bytes at byte ${i * 16}.*: the WebGPU device was lost \\(destroyed`,
          ),
        ),
      );
      await expect(device.read(buffer, 0, 4)).rejects.toThrow(/webgpu:0: reading 4 bytes at byte 0: .*lost/);
    });
  },
);
