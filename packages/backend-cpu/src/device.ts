import {
  type CompileOptions,
  checkDevice,
  type Device,
  type DeviceBuffer,
  type DeviceInfo,
  type DevicePlugin,
  deviceDisposed,
  EXECUTOR_OPS,
  type Executable,
  estimateSeconds,
  KERNEL_ABI_VERSION,
  type NodeQuery,
  opDef,
  type Subgraph,
  type Support,
} from '@kiln/ir';
import { CpuBuffer, checkRange } from './buffer.js';
import { BufferPool } from './buffer-pool.js';
import { CpuExecutable } from './executable.js';
import { kernelFor } from './kernels/index.js';

export interface CpuDeviceOptions {
  /** Device name, such as 'cpu:0'. */
  readonly name?: string;
  /** Allocate SharedArrayBuffers, so other threads can map the same memory. */
  readonly shared?: boolean;
}

/** A device on typed arrays in this thread. Memory operations complete at once. */
export class CpuDevice implements Device {
  readonly abi = KERNEL_ABI_VERSION;
  readonly kind = 'cpu';
  readonly name: string;
  // Rough single-thread figures for the default cost model; the placer needs ratios, not truth.
  readonly info: DeviceInfo = { flopsPerSecond: 2e9, bytesPerSecond: 4e9 };
  private readonly shared: boolean;
  private readonly pool: BufferPool | null;
  private disposed = false;

  constructor(options: CpuDeviceOptions = {}) {
    this.name = options.name ?? 'cpu:0';
    this.shared = options.shared ?? false;
    this.pool = this.shared ? null : new BufferPool();
  }

  allocate(byteLength: number): DeviceBuffer {
    this.checkLive('allocate');
    return new CpuBuffer(this.name, byteLength, this.shared, this.pool?.take(byteLength));
  }

  free(buffer: DeviceBuffer): void {
    const b = checkRange(this.name, buffer, 0, 0, 'free');
    b.freed = true;
    // The memory outlives its handle: the next allocation of its size takes it. (Shared memory
    // is not pooled: another thread may still map it.)
    if (this.pool && b.bytes instanceof ArrayBuffer) this.pool.give(b.bytes);
  }

  async write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void> {
    this.writeSync(buffer, byteOffset, data);
  }

  writeSync(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.checkLive('write');
    const b = checkRange(this.name, buffer, byteOffset, data.byteLength, 'write');
    new Uint8Array(b.bytes, byteOffset, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  async read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    return this.readSync(buffer, byteOffset, byteLength);
  }

  readSync(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array {
    this.checkLive('read');
    const b = checkRange(this.name, buffer, byteOffset, byteLength, 'read');
    return new Uint8Array(b.bytes, byteOffset, byteLength).slice();
  }

  supports(node: NodeQuery): Support {
    if (EXECUTOR_OPS.has(node.op))
      return { ok: false, reason: `${node.op} is bound by the executor, not run by devices` };
    if (!kernelFor(node.op)) return { ok: false, reason: `no cpu kernel for ${node.op}` };
    return {
      ok: true,
      seconds: estimateSeconds(opDef(node.op).cost(node.inputs, node.outputs, node.attrs), this.info),
    };
  }

  async compile(subgraph: Subgraph, options?: CompileOptions): Promise<Executable> {
    return this.compileSync(subgraph, options);
  }

  /**
   * Compiles for this thread. With `options.memory` every intermediate lives at its planned offset
   * in one arena (a SharedArrayBuffer on a shared device) and steps run in the planned order; a
   * layout that does not fit the subgraph is rejected with KilnError('invalid-argument').
   */
  compileSync(subgraph: Subgraph, options?: CompileOptions): CpuExecutable {
    this.checkLive('compile');
    return new CpuExecutable(this.name, subgraph, options?.memory, this.shared);
  }

  /**
   * Nothing is ever in flight here (every call completes at once), so there is nothing to cancel;
   * later calls fail as on any other device, so a program behaves the same on each.
   */
  dispose(): void {
    this.disposed = true;
    this.pool?.clear();
  }

  private checkLive(what: string): void {
    if (this.disposed) throw deviceDisposed(this.name, what);
  }
}

/** The plugin object: what `registerPlugin` takes. */
export const cpuPlugin: DevicePlugin<CpuDeviceOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'cpu',
  create: (options) => {
    const device = new CpuDevice(options);
    checkDevice(device);
    return device;
  },
};
