import { KilnError } from '../errors.js';
import type { Subgraph } from '../graph/subgraph.js';
import type { OpName } from '../ops/index.js';
import { BufferPool } from './buffer-pool.js';
import { deviceDisposed } from './check.js';
import {
  type CompileOptions,
  type Device,
  type DeviceBuffer,
  type DeviceInfo,
  type Executable,
  KERNEL_ABI_VERSION,
  type NodeQuery,
  type Support,
} from './device.js';
import { HostExecutable } from './host-executable.js';
import { type KernelFactory, type KernelTable, kernelIn, kernelSupport } from './host-kernel.js';
import { checkHostRange, HostBuffer, type HostMemory } from './host-memory.js';

export interface HostDeviceOptions {
  /** Unique among registered devices, such as 'cpu:0'. */
  readonly name: string;
  /** The plugin kind, such as 'cpu'. */
  readonly kind: string;
  /** A kernel for every primitive; composites where the device has a faster way. */
  readonly kernels: KernelTable;
  /** Figures for the default cost model; the placer needs ratios, not truth. */
  readonly info?: DeviceInfo;
  /** Allocate SharedArrayBuffers, so other threads can map the same memory. */
  readonly shared?: boolean;
  /**
   * Why this device declines a node its table has a kernel for, if it does: a fused group naming
   * an op the fused kernel has no expression for, say. The node is then expanded or placed
   * elsewhere, as for any op without a kernel.
   */
  readonly declines?: (node: NodeQuery) => string | undefined;
  /**
   * Keep freed buffers for the next allocation of their size (see BufferPool): a device that runs
   * the same partitions step after step then allocates nothing. Not for shared memory.
   */
  readonly recycle?: boolean;
  /**
   * Where each buffer's and arena's memory starts in its ArrayBuffer, for a device whose kernels
   * want it aligned: the offset of the ArrayBuffer's first byte on a 64-byte cache line (only
   * native code knows the address). Its ArrayBuffers are then ALIGNMENT_SLACK bytes longer than
   * asked. Not for shared memory. Default: memory starts at 0, where V8 put it.
   */
  readonly alignedStart?: (bytes: ArrayBuffer) => number;
}

/** The extra bytes a device with `alignedStart` allocates: room to move to the next cache line. */
export const ALIGNMENT_SLACK = 63;

/**
 * The whole kernel ABI for a device that computes on typed arrays in this thread, given its
 * kernels: memory (allocate, write, read, free, with every misuse a KilnError), capability (what
 * the kernel table has), and compilation (kernels instantiated per node, the memory planner's
 * arena honoured). Everything completes at once, so the synchronous members are here too. The CPU
 * backend is one; a plugin author's first device is `new HostDevice({ name, kind, kernels })`.
 */
export class HostDevice implements Device {
  readonly abi = KERNEL_ABI_VERSION;
  readonly name: string;
  readonly kind: string;
  readonly info: DeviceInfo;
  protected readonly shared: boolean;
  private readonly kernels: KernelTable;
  private readonly declines: ((node: NodeQuery) => string | undefined) | undefined;
  private readonly pool: BufferPool | null;
  private readonly alignedStart: ((bytes: ArrayBuffer) => number) | undefined;
  private disposed = false;

  constructor(options: HostDeviceOptions) {
    this.name = options.name;
    this.kind = options.kind;
    this.kernels = options.kernels;
    this.info = options.info ?? { flopsPerSecond: 1e9, bytesPerSecond: 4e9 };
    this.shared = options.shared ?? false;
    this.declines = options.declines;
    // Shared memory is never recycled: another thread may still map it.
    this.pool = options.recycle && !this.shared ? new BufferPool() : null;
    this.alignedStart = this.shared ? undefined : options.alignedStart;
  }

  allocate(byteLength: number): DeviceBuffer {
    this.checkLive('allocate');
    const slack = this.alignedStart ? ALIGNMENT_SLACK : 0;
    const reused = this.pool?.take(byteLength + slack);
    if (!reused) return new HostBuffer(this.name, byteLength, this.memory(byteLength));
    // A reused buffer's array (if one came back with it) already starts where its memory does.
    const array = this.pool!.takenArray;
    const start = array ? array.byteOffset : (this.alignedStart?.(reused) ?? 0);
    const buffer = new HostBuffer(this.name, byteLength, { bytes: reused, start });
    buffer.bindLast(array);
    return buffer;
  }

  /** Fresh zeroed memory of `byteLength` bytes, for a buffer or an arena. */
  private memory(byteLength: number): HostMemory {
    try {
      if (this.shared) return { bytes: new SharedArrayBuffer(byteLength), start: 0 };
      if (!this.alignedStart) return { bytes: new ArrayBuffer(byteLength), start: 0 };
      const bytes = new ArrayBuffer(byteLength + ALIGNMENT_SLACK);
      return { bytes, start: this.alignedStart(bytes) };
    } catch (e) {
      throw new KilnError('runtime', `${this.name}: cannot allocate ${byteLength} bytes`, { cause: e });
    }
  }

  free(buffer: DeviceBuffer): void {
    const b = checkHostRange(this.name, buffer, 0, 0, 'free');
    b.freed = true;
    if (this.pool && b.bytes instanceof ArrayBuffer)
      this.pool.give(b.bytes, b.lastArray, b.start, b.byteLength);
  }

  async write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void> {
    this.writeSync(buffer, byteOffset, data);
  }

  writeSync(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.checkLive('write');
    const b = checkHostRange(this.name, buffer, byteOffset, data.byteLength, 'write');
    new Uint8Array(b.bytes, b.start + byteOffset, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  async read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    return this.readSync(buffer, byteOffset, byteLength);
  }

  readSync(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array {
    this.checkLive('read');
    const b = checkHostRange(this.name, buffer, byteOffset, byteLength, 'read');
    return new Uint8Array(b.bytes, b.start + byteOffset, byteLength).slice();
  }

  view(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array {
    this.checkLive('read');
    const b = checkHostRange(this.name, buffer, byteOffset, byteLength, 'read');
    return new Uint8Array(b.bytes, b.start + byteOffset, byteLength);
  }

  supports(node: NodeQuery): Support {
    const support = kernelSupport(this, node, this.kernelFor(node.op) !== undefined);
    const reason = support.ok ? this.declines?.(node) : undefined;
    return reason === undefined ? support : { ok: false, reason };
  }

  async compile(subgraph: Subgraph, options?: CompileOptions): Promise<Executable> {
    return this.compileSync(subgraph, options);
  }

  /**
   * Compiles for this thread. With `options.memory` every intermediate lives at its planned offset
   * in one arena (a SharedArrayBuffer on a shared device) and steps run in the planned order; a
   * layout that does not fit the subgraph is rejected with KilnError('invalid-argument').
   */
  compileSync(subgraph: Subgraph, options?: CompileOptions): HostExecutable {
    this.checkLive('compile');
    return new HostExecutable(
      this.name,
      subgraph,
      (op) => this.kernelFor(op),
      options?.memory,
      (n) => this.memory(n),
    );
  }

  /** Nothing is ever in flight (every call completes at once); later calls fail as on any device. */
  dispose(): void {
    this.disposed = true;
    this.pool?.clear();
  }

  protected kernelFor(op: OpName): KernelFactory<unknown> | undefined {
    return kernelIn(this.kernels, op);
  }

  protected checkLive(what: string): void {
    if (this.disposed) throw deviceDisposed(this.name, what);
  }
}
