import {
  type BufferView,
  type Device,
  type DeviceBuffer,
  type DeviceInfo,
  type DevicePlugin,
  deviceDisposed,
  EXECUTOR_OPS,
  type Executable,
  estimateSeconds,
  KERNEL_ABI_VERSION,
  KilnError,
  type NodeQuery,
  type OpName,
  opDef,
  type Subgraph,
  type Support,
} from '@kiln/ir';

export interface NullDeviceOptions {
  /** Device name, such as 'null:0'. */
  readonly name?: string;
  readonly kind?: string;
  /** Throughput for the default cost model; a faster device wins the placer's comparisons. */
  readonly info?: Partial<DeviceInfo>;
  /** Ops this device declines, to exercise fallbacks and capability errors. */
  readonly unsupported?: Iterable<OpName>;
}

/** A buffer that is only a size: the null device keeps no bytes. */
class NullBuffer implements DeviceBuffer {
  freed = false;
  constructor(
    readonly device: string,
    readonly byteLength: number,
  ) {}
}

/** A compiled subgraph that does nothing but count. */
export class NullExecutable implements Executable {
  runs = 0;
  disposed = false;
  readonly nodeCount: number;

  constructor(
    private readonly owner: NullDevice,
    subgraph: Subgraph,
  ) {
    this.nodeCount = subgraph.nodes.length;
  }

  async run(inputs: readonly BufferView[], outputs: readonly BufferView[]): Promise<void> {
    this.runSync(inputs, outputs);
  }

  runSync(_inputs: readonly BufferView[], _outputs: readonly BufferView[]): void {
    if (this.disposed) throw new KilnError('runtime', `${this.owner.name}: run after dispose`);
    this.runs++;
    this.owner.runs++;
    this.owner.log.push(this.nodeCount);
  }

  dispose(): void {
    this.disposed = true;
  }
}

/**
 * A device that computes nothing, as tinygrad's null device: memory is byte counts, reads are
 * zeros, kernels only count their runs. Scheduler tests place and run large graphs with it fast,
 * and a cluster of them with different throughputs exercises the cost model.
 */
export class NullDevice implements Device {
  readonly abi = KERNEL_ABI_VERSION;
  readonly name: string;
  readonly kind: string;
  readonly info: DeviceInfo;
  readonly unsupported: ReadonlySet<OpName>;
  /** Runs of every executable this device compiled, and the node count of each run, in order. */
  runs = 0;
  readonly log: number[] = [];
  /** Subgraphs compiled so far. */
  compiled = 0;
  /** Bytes currently allocated, and the most ever allocated at once. */
  allocatedBytes = 0;
  peakBytes = 0;
  private disposed = false;

  constructor(options: NullDeviceOptions = {}) {
    this.name = options.name ?? 'null:0';
    this.kind = options.kind ?? 'null';
    this.info = { flopsPerSecond: 1e9, bytesPerSecond: 1e9, ...options.info };
    this.unsupported = new Set(options.unsupported ?? []);
  }

  allocate(byteLength: number): DeviceBuffer {
    this.checkLive('allocate');
    if (!Number.isInteger(byteLength) || byteLength < 0) {
      throw new KilnError('invalid-argument', `${this.name}: cannot allocate ${byteLength} bytes`);
    }
    this.allocatedBytes += byteLength;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return new NullBuffer(this.name, byteLength);
  }

  free(buffer: DeviceBuffer): void {
    const b = this.own(buffer, 0, 0, 'free');
    b.freed = true;
    this.allocatedBytes -= b.byteLength;
  }

  async write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void> {
    this.writeSync(buffer, byteOffset, data);
  }

  writeSync(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): void {
    this.checkLive('write');
    this.own(buffer, byteOffset, data.byteLength, 'write');
  }

  async read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    return this.readSync(buffer, byteOffset, byteLength);
  }

  readSync(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array {
    this.checkLive('read');
    this.own(buffer, byteOffset, byteLength, 'read');
    return new Uint8Array(byteLength);
  }

  supports(node: NodeQuery): Support {
    if (EXECUTOR_OPS.has(node.op))
      return { ok: false, reason: `${node.op} is bound by the executor, not run by devices` };
    if (this.unsupported.has(node.op)) return { ok: false, reason: `${this.name} declines ${node.op}` };
    return {
      ok: true,
      seconds: estimateSeconds(opDef(node.op).cost(node.inputs, node.outputs, node.attrs), this.info),
    };
  }

  async compile(subgraph: Subgraph): Promise<Executable> {
    return this.compileSync(subgraph);
  }

  compileSync(subgraph: Subgraph): NullExecutable {
    this.checkLive('compile');
    for (const n of subgraph.nodes) {
      if (n.op !== 'placeholder' && this.unsupported.has(n.op)) {
        throw new KilnError('unsupported', `${this.name}: cannot compile node #${n.id} (${n.op})`);
      }
    }
    this.compiled++;
    return new NullExecutable(this, subgraph);
  }

  /** Nothing is ever in flight (every call completes at once); later calls fail as on any device. */
  dispose(): void {
    this.disposed = true;
  }

  private checkLive(what: string): void {
    if (this.disposed) throw deviceDisposed(this.name, what);
  }

  private own(buffer: DeviceBuffer, byteOffset: number, byteLength: number, what: string): NullBuffer {
    if (!(buffer instanceof NullBuffer) || buffer.device !== this.name) {
      throw new KilnError('invalid-argument', `${this.name}: ${what} of a buffer from ${buffer.device}`);
    }
    if (buffer.freed) throw new KilnError('invalid-argument', `${this.name}: ${what} of a freed buffer`);
    if (byteOffset < 0 || byteOffset + byteLength > buffer.byteLength) {
      throw new KilnError(
        'invalid-argument',
        `${this.name}: ${what} of ${byteLength} bytes at ${byteOffset} is outside a ${buffer.byteLength}-byte buffer`,
      );
    }
    return buffer;
  }
}

/** The null device as a plugin, so worker threads load it by module like any backend. */
export const plugin: DevicePlugin<NullDeviceOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'null',
  create: (options) => new NullDevice(options),
};
