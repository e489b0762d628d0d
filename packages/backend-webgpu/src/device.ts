import {
  byteSizeOf,
  type CompileOptions,
  type Device,
  type DeviceBuffer,
  type DeviceInfo,
  KERNEL_ABI_VERSION,
  KilnError,
  kernelSupport,
  type NodeQuery,
  type Subgraph,
  type Support,
} from '@kiln/ir';
import { checkRange, usable, WebGpuBuffer } from './buffer.js';
import { GpuContext, type GpuStats } from './context.js';
import { describeWork, WebGpuExecutable } from './executable.js';
import { fromGpuError, popScopes, pushScopes } from './gpu-errors.js';
import { copyBytes } from './kernels/copy.js';
import { MAX_DIRECT_INPUTS } from './kernels/elementwise.js';
import { kernelFor } from './kernels/index.js';
import { hasScalarExpr } from './kernels/scalar-ops.js';
import { MAP_READ } from './usage.js';

export interface WebGpuDeviceOptions {
  /** Device name, such as 'webgpu:0'. */
  readonly name?: string;
  /** Passed to requestAdapter (power preference, fallback adapter). */
  readonly adapter?: GPURequestAdapterOptions;
}

const FOUR = (n: number) => Math.ceil(n / 4) * 4;

/**
 * The bytes of a view, as writeBuffer's DOM typings accept them: views of an ArrayBuffer as they
 * are, views of shared memory copied (the spec allows those, the typings do not).
 */
function plainBytes(data: ArrayBufferView): Uint8Array<ArrayBuffer> {
  if (data.buffer instanceof ArrayBuffer)
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const copy = new Uint8Array(data.byteLength);
  copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return copy;
}

/**
 * A kiln device on a WebGPU adapter (a browser's navigator.gpu, or Dawn in Node). Memory is
 * asynchronous: writes are queued (queue.writeBuffer, or a merge kernel for bytes that are not
 * word-aligned), reads copy into pooled staging buffers and map them, so neither stalls the queue.
 * If the GPU device is lost every later call fails with a KilnError, and a new device can be made.
 * Work still in flight when the device is disposed or lost rejects with a KilnError naming it.
 */
export class WebGpuDevice implements Device {
  readonly abi = KERNEL_ABI_VERSION;
  readonly kind = 'webgpu';
  readonly name: string;
  // Rough figures for the default cost model; the placer needs ratios, not truth.
  readonly info: DeviceInfo = { flopsPerSecond: 5e10, bytesPerSecond: 5e10 };
  private readonly ctx: GpuContext;
  /** Resolves with the reason once the underlying GPUDevice is lost. */
  readonly lost: Promise<string>;
  /**
   * The GPU object and adapter this device came from, held while it lives: Dawn in Node tears its
   * instance down when the GPU object is collected, and pending maps would then never resolve (or
   * the process crashes). Dropped once disposed and every callback Dawn still owes has come.
   */
  private origin: { gpu: GPU; adapter: GPUAdapter } | null;

  constructor(
    /** The GPUDevice underneath; tests destroy it to simulate a lost device. */
    readonly gpuDevice: GPUDevice,
    /** What the adapter says it is, for logs. */
    readonly adapterInfo: string,
    options: WebGpuDeviceOptions = {},
    origin: { gpu: GPU; adapter: GPUAdapter } | null = null,
  ) {
    this.origin = origin;
    this.name = options.name ?? 'webgpu:0';
    this.ctx = new GpuContext(this.name, gpuDevice);
    this.lost = gpuDevice.lost.then((info) => {
      const reason = `${info.reason}${info.message ? `: ${info.message}` : ''}`;
      this.ctx.end(false, reason);
      return reason;
    });
    // Errors outside any scope (none are expected) must not crash a browser tab or a Node process.
    gpuDevice.onuncapturederror = (event) => {
      event.preventDefault?.();
    };
  }

  /** What the device is waiting for (reads, writes, compiles, runs in flight), oldest first. */
  get pendingWork(): string[] {
    return this.ctx.pending.descriptions;
  }

  /** Pipelines compiled and dispatches encoded so far. */
  get stats(): Readonly<GpuStats> {
    return this.ctx.stats;
  }

  allocate(byteLength: number): DeviceBuffer {
    this.ctx.checkAlive('allocate');
    if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw new KilnError('invalid-argument', `${this.name}: cannot allocate ${byteLength} bytes`);
    }
    if (byteLength > this.gpuDevice.limits.maxBufferSize) {
      throw new KilnError(
        'runtime',
        `${this.name}: cannot allocate ${byteLength} bytes; the adapter's largest buffer is ${this.gpuDevice.limits.maxBufferSize}`,
      );
    }
    pushScopes(this.gpuDevice);
    const gpu = this.ctx.storage.acquire(FOUR(Math.max(byteLength, 4)));
    const ready = popScopes(this.gpuDevice).then((err) => {
      if (err) buffer.failure = fromGpuError(this.name, err, `allocating ${byteLength} bytes`);
    });
    this.ctx.pending.follow(ready);
    const buffer = new WebGpuBuffer(this.name, byteLength, gpu, ready);
    return buffer;
  }

  free(buffer: DeviceBuffer): void {
    const b = checkRange(this.name, buffer, 0, 0, 'free');
    b.freed = true;
    // Later work on the queue that reuses it is ordered after everything already submitted; a
    // buffer the device never made is not worth keeping.
    void b.ready.then(() => {
      if (b.failure || !this.ctx.alive) b.gpu.destroy();
      else this.ctx.storage.release(b.gpu);
    });
  }

  write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void> {
    const what = `writing ${data.byteLength} bytes at byte ${byteOffset}`;
    return this.ctx.pending.track(what, this.writeNow(buffer, byteOffset, data, what));
  }

  private async writeNow(
    buffer: DeviceBuffer,
    byteOffset: number,
    data: ArrayBufferView,
    what: string,
  ): Promise<void> {
    this.ctx.checkAlive(what);
    const b = checkRange(this.name, buffer, byteOffset, data.byteLength, 'write');
    if (b.failure) throw b.failure;
    const bytes = plainBytes(data);
    if (bytes.byteLength === 0) return;
    // Queued before any await, so work submitted after this call (not awaited) still sees it.
    const queue = this.gpuDevice.queue;
    if (byteOffset % 4 === 0 && bytes.byteLength % 4 === 0) {
      queue.writeBuffer(b.gpu, byteOffset, bytes);
      await usable(b);
      return;
    }
    // Bytes that do not fill whole words: stage them, then merge them in with a kernel, so the
    // neighbouring bytes (other tensors of an arena) stay as they are.
    const padded = new Uint8Array(FOUR(bytes.byteLength));
    padded.set(bytes);
    const staging = this.ctx.storage.acquire(padded.byteLength);
    queue.writeBuffer(staging, 0, padded);
    const d = copyBytes({ kind: 'value', id: 0 }, { kind: 'value', id: 0 }, bytes.byteLength);
    const uniform = this.ctx.uniforms.acquire(GpuContext.uniformBytes(d));
    pushScopes(this.gpuDevice);
    const encoder = this.gpuDevice.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this.ctx.encode(
      pass,
      d,
      [
        { buffer: staging, byteOffset: 0, byteLength: padded.byteLength, wide: false },
        { buffer: b.gpu, byteOffset, byteLength: bytes.byteLength, wide: false },
      ],
      uniform,
    );
    pass.end();
    queue.submit([encoder.finish()]);
    this.ctx.storage.release(staging);
    this.ctx.uniforms.release(uniform);
    const err = await popScopes(this.gpuDevice);
    await usable(b);
    if (err) throw fromGpuError(this.name, err, 'writing');
  }

  read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const what = `reading ${byteLength} bytes at byte ${byteOffset}`;
    return this.ctx.pending.track(what, this.readNow(buffer, byteOffset, byteLength, what));
  }

  private async readNow(
    buffer: DeviceBuffer,
    byteOffset: number,
    byteLength: number,
    what: string,
  ): Promise<Uint8Array> {
    this.ctx.checkAlive(what);
    const b = checkRange(this.name, buffer, byteOffset, byteLength, 'read');
    if (b.failure) throw b.failure;
    if (byteLength === 0) return new Uint8Array(0);
    // copyBufferToBuffer moves whole words: widen the range, then cut the answer out of it.
    const start = byteOffset - (byteOffset % 4);
    const size = FOUR(byteOffset + byteLength) - start;
    const staging = this.ctx.staging.acquire(size);
    pushScopes(this.gpuDevice);
    const encoder = this.gpuDevice.createCommandEncoder();
    encoder.copyBufferToBuffer(b.gpu, start, staging, 0, size);
    this.gpuDevice.queue.submit([encoder.finish()]);
    // Map at once (it completes when the copy has run), while the error scopes are answered.
    const mapped = staging.mapAsync(MAP_READ, 0, size).then(
      () => null,
      (e: unknown) => e,
    );
    const err = await popScopes(this.gpuDevice);
    const mapError = await mapped;
    try {
      await usable(b);
      if (err) throw fromGpuError(this.name, err, 'reading');
      if (mapError !== null) {
        this.ctx.checkAlive(what);
        throw new KilnError(
          'runtime',
          `${this.name}: reading ${byteLength} bytes failed: ${String(mapError)}`,
          {
            cause: mapError,
          },
        );
      }
      const out = new Uint8Array(staging.getMappedRange(0, size)).slice(
        byteOffset - start,
        byteOffset - start + byteLength,
      );
      staging.unmap();
      this.ctx.staging.release(staging);
      return out;
    } catch (e) {
      staging.destroy();
      throw e;
    }
  }

  supports(node: NodeQuery): Support {
    const base = kernelSupport(this, node, kernelFor(node.op) !== undefined);
    if (!base.ok) return base;
    if (node.op === 'fused') {
      const program = (node.attrs.program ?? []) as readonly (readonly [string, ...unknown[]])[];
      const op = program.map((step) => step[0]).find((name) => !hasScalarExpr(name));
      if (op !== undefined)
        return { ok: false, reason: `the fused shader has no expression for ${op} (it runs op by op)` };
    }
    // Every tensor of a dispatch may sit in its own buffer: stay within the bindings. Concat copies
    // one input per dispatch; wide fusion groups stage their inputs in one buffer first.
    const ins =
      node.op === 'concat'
        ? 1
        : node.op === 'fused' && node.inputs.length > MAX_DIRECT_INPUTS
          ? 1
          : node.inputs.length;
    const tensors = ins + node.outputs.length;
    if (tensors > this.ctx.maxSlots) {
      return {
        ok: false,
        reason: `${node.op} with ${tensors} tensors needs more storage bindings than the adapter's ${this.ctx.maxSlots}`,
      };
    }
    const big = [...node.inputs, ...node.outputs].find((t) => byteSizeOf(t) > this.ctx.maxBinding);
    if (big)
      return {
        ok: false,
        reason: `a tensor of ${byteSizeOf(big)} bytes exceeds the adapter's largest binding (${this.ctx.maxBinding})`,
      };
    return base;
  }

  /** Compiles a subgraph; `options.memory` is a hint this device does not need (it allocates per value). */
  compile(subgraph: Subgraph, _options?: CompileOptions): Promise<WebGpuExecutable> {
    const what = `compiling ${describeWork(subgraph)}`;
    return this.ctx.pending.track(what, WebGpuExecutable.compile(this.ctx, subgraph, what));
  }

  /**
   * Work in flight rejects now with KilnError('cancelled') naming it (never an unhandled
   * rejection, awaited or not), and later calls fail at once, instead of as GPU errors on a
   * destroyed device.
   */
  dispose(): void {
    this.ctx.end(true, 'disposed');
    this.ctx.destroy();
    this.gpuDevice.destroy();
    // Dropping the GPU object while Dawn still owes this device callbacks (its loss, error scopes,
    // maps) lets the collector tear Dawn down under them: the process then crashes or hangs.
    void Promise.all([this.lost, this.ctx.pending.drained()]).then(() => {
      this.origin = null;
    });
  }

  /** Whether the GPU object is still held: until dispose() and the callbacks Dawn then owes. */
  get holdsAdapter(): boolean {
    return this.origin !== null;
  }
}
