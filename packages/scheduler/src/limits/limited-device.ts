import {
  type BufferView,
  byteSizeOf,
  type CompileOptions,
  type ConcreteType,
  type Device,
  type DeviceBuffer,
  describeNode,
  type Executable,
  formatType,
  KilnError,
  type RunObserver,
  type Subgraph,
} from '@kiln/ir';
import { formatBytes, type Limits } from './limits.js';

/**
 * A device with its memory counted and capped: every allocation and every executable's working
 * memory is checked against `maxTensorBytes` (one at a time) and `maxDeviceBytes` (all in use)
 * before the device is asked, so a graph that wants too much fails with a KilnError('limit') naming
 * the limit, and the process never attempts the allocation. Everything else passes straight
 * through; sync members exist exactly where the device has them.
 */
export class LimitedDevice implements Device {
  readonly abi: Device['abi'];
  readonly name: string;
  readonly kind: string;
  readonly info: Device['info'];
  readonly writeSync?: NonNullable<Device['writeSync']>;
  readonly readSync?: NonNullable<Device['readSync']>;
  readonly view?: NonNullable<Device['view']>;
  readonly compileSync?: NonNullable<Device['compileSync']>;
  /** Bytes allocated and reserved for executables, now. */
  private used = 0;

  constructor(
    readonly inner: Device,
    readonly limits: Limits,
  ) {
    this.abi = inner.abi;
    this.name = inner.name;
    this.kind = inner.kind;
    this.info = inner.info;
    if (inner.writeSync) this.writeSync = inner.writeSync.bind(inner);
    if (inner.readSync) this.readSync = inner.readSync.bind(inner);
    if (inner.view) this.view = inner.view.bind(inner);
    if (inner.compileSync) {
      const compileSync = inner.compileSync.bind(inner);
      this.compileSync = (subgraph, options) =>
        this.reserving(this.workingBytes(subgraph, options), () => compileSync(subgraph, options));
    }
  }

  /** Bytes in use through this device now. */
  get bytesInUse(): number {
    return this.used;
  }

  /**
   * Throws the limit error `bytes` more would cause, naming what they are for: `what()`, called
   * only then (an eager op checks every result, and formatting its type each time cost a tenth of
   * the op).
   */
  check(bytes: number, what: () => string): void {
    const { maxTensorBytes, maxDeviceBytes } = this.limits;
    if (bytes > maxTensorBytes) {
      throw new KilnError(
        'limit',
        `${this.name}: ${what()} needs ${formatBytes(bytes)}, more than limits.maxTensorBytes (${formatBytes(maxTensorBytes)}) allows in one allocation`,
      );
    }
    if (this.used + bytes > maxDeviceBytes) {
      throw new KilnError(
        'limit',
        `${this.name}: ${what()} needs ${formatBytes(bytes)} with ${formatBytes(this.used)} already in use, more than limits.maxDeviceBytes (${formatBytes(maxDeviceBytes)})`,
      );
    }
  }

  allocate(byteLength: number): DeviceBuffer {
    return this.allocateFor(byteLength, () => `an allocation of ${byteLength} bytes`);
  }

  /** allocate, whose refusal names `what()` the bytes are for. */
  allocateFor(byteLength: number, what: () => string): DeviceBuffer {
    this.check(byteLength, what);
    const buffer = this.inner.allocate(byteLength);
    this.used += byteLength;
    return buffer;
  }

  free(buffer: DeviceBuffer): void {
    // The device checks the buffer first: a double free or a stranger's buffer changes no count.
    this.inner.free(buffer);
    this.used -= buffer.byteLength;
  }

  write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void> {
    return this.inner.write(buffer, byteOffset, data);
  }

  read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    return this.inner.read(buffer, byteOffset, byteLength);
  }

  supports(...args: Parameters<Device['supports']>): ReturnType<Device['supports']> {
    return this.inner.supports(...args);
  }

  async compile(subgraph: Subgraph, options?: CompileOptions): Promise<Executable> {
    const bytes = this.workingBytes(subgraph, options);
    this.check(bytes, () => 'the working memory of a compiled subgraph');
    this.used += bytes;
    try {
      return this.releasing(await this.inner.compile(subgraph, options), bytes);
    } catch (e) {
      this.used -= bytes;
      throw e;
    }
  }

  dispose(): void | Promise<void> {
    return this.inner.dispose();
  }

  private reserving(bytes: number, compile: () => Executable): Executable {
    this.check(bytes, () => 'the working memory of a compiled subgraph');
    this.used += bytes;
    try {
      return this.releasing(compile(), bytes);
    } catch (e) {
      this.used -= bytes;
      throw e;
    }
  }

  /** The executable, with its reservation given back when it is disposed (once). */
  private releasing(exe: Executable, bytes: number): Executable {
    if (bytes === 0) return exe;
    let held = true;
    const wrapped: Executable = {
      run: (inputs: readonly BufferView[], outputs: readonly BufferView[], observe?: RunObserver) =>
        exe.run(inputs, outputs, observe),
      dispose: () => {
        if (held) {
          held = false;
          this.used -= bytes;
        }
        exe.dispose();
      },
    };
    const runSync = exe.runSync?.bind(exe);
    return runSync ? { ...wrapped, runSync } : wrapped;
  }

  /**
   * What running a subgraph needs beyond its bound inputs and outputs: its planned arena, or else
   * every intermediate at once (an upper bound). Each value is checked on its own first, so the
   * error names the node that asked for too much.
   */
  private workingBytes(subgraph: Subgraph, options?: CompileOptions): number {
    const bound = new Set([...subgraph.inputs, ...subgraph.results]);
    let sum = 0;
    for (const node of subgraph.nodes) {
      if (node.op === 'placeholder') continue;
      for (const v of node.outputs) {
        const type = subgraph.values[v]!.type as ConcreteType;
        const bytes = byteSizeOf(type);
        if (bytes > this.limits.maxTensorBytes) {
          this.check(bytes, () => `${describeNode(node)} (its result ${formatType(type)})`);
        }
        if (!bound.has(v)) sum += bytes;
      }
    }
    return options?.memory ? options.memory.arenaBytes : sum;
  }
}
