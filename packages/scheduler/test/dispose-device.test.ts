import { CpuDevice } from '@kiln/backend-cpu';
import { type Device, type DeviceBuffer, Graph, KilnError, requiredNodes, type Subgraph } from '@kiln/ir';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EagerContext } from '../src/eager/context.js';
import { Program } from '../src/program/program.js';
import { NullDevice } from '../src/testing/null-device.js';
import { AsyncCpuDevice } from './fixtures/async-cpu.js';

/** Rejections nobody handled, heard while a test ran and for a moment after. */
const unhandled: unknown[] = [];
const hear = (reason: unknown) => unhandled.push(reason);
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

const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe.for([
  ['cpu', () => new CpuDevice({ name: 'cpu:9' })],
  ['null', () => new NullDevice({ name: 'null:9' })],
  ['async-cpu', () => new AsyncCpuDevice('async-cpu:9')],
] as const)('disposing a %s device under eager tensors', ([, make]) => {
  it('rejects a read asked for before, naming the tensor; unawaited, it is not unhandled', async () => {
    const device: Device = make();
    const ctx = new EagerContext(device);
    const t = ctx.constant({ dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) });
    const [u] = ctx.apply('exp', [t], {});
    const read = u!.data();
    void u!.array();
    await device.dispose();
    const error = await failure(read);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).code).toBe('cancelled');
    expect((error as KilnError).message).toMatch(
      new RegExp(
        `^reading tensor #\\d+ \\(f32\\[3\\] on ${device.name}\\): .*${device.name}: .*the device was disposed$`,
      ),
    );
    // Later use fails the same way; releasing tensors afterwards is quiet.
    expect(() => device.allocate(4)).toThrow(`${device.name}: allocate: the device was disposed`);
    u!.dispose();
    t.dispose();
  });
});

/** A device whose compiles wait for `fail()` and then fail; everything else is the async CPU's. */
class LateFailingDevice extends AsyncCpuDevice {
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));
  fail(): void {
    this.release();
  }
  override async compile(_subgraph: Subgraph): Promise<never> {
    await this.gate;
    throw new KilnError('unsupported', `${this.name}: refused, late`);
  }
}

describe('disposing what still waits on a device', () => {
  it('a Program disposed while a compile is in flight leaves its later failure unhandled nowhere', async () => {
    const device = new LateFailingDevice('late:0');
    const ctx = new EagerContext(device);
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const [y] = g.apply('exp', [x], {});
    const program = new Program(ctx, g, requiredNodes(g, [y!.id]), [x.id], [y!.id], { name: 'late program' });
    const t = ctx.constant({ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) });
    const [out] = await program.runAsync([t]);
    program.dispose();
    device.fail();
    // The run that asked for the compile hears its failure, naming the program and this line.
    const error = await failure(out!.data());
    expect((error as KilnError).message).toMatch(
      /^reading tensor #\d+ .*: late program \(at [^)]*dispose-device\.test\.ts:\d+:\d+\): late:0: refused, late$/,
    );
  });

  it('a free that fails is reported at the next read, not as a rejected queue nobody awaits', async () => {
    const broken = new Set<DeviceBuffer>();
    const device = new (class extends AsyncCpuDevice {
      override free(buffer: DeviceBuffer): void {
        if (broken.has(buffer)) throw new KilnError('runtime', `${this.name}: injected free failure`);
        super.free(buffer);
      }
    })('free-fails:0');
    const ctx = new EagerContext(device);
    const t = ctx.constant({ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) });
    const [u] = ctx.apply('neg', [t], {});
    broken.add(u!.view('test').buffer);
    u!.dispose();
    const error = await failure(t.data());
    expect((error as KilnError).message).toMatch(/freeing a tensor: free-fails:0: injected free failure$/);
    // Reported once, the queue runs again.
    const [v] = ctx.apply('neg', [t], {});
    expect(Array.from(await v!.data())).toEqual([-1, -2]);
  });
});
