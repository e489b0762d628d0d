import { deviceDisposed, KilnError } from '@kiln/ir';
import { PendingWork } from './pending.js';
import { BufferPool } from './pool.js';
import { type BoundTensor, type Dispatch, pipelineKey, shaderSource, uniformWords } from './shader.js';
import { BufferUsage, SHADER_STAGE_COMPUTE } from './usage.js';

/** A tensor's bytes for one dispatch: where they are, and whether a bool is stored one per word. */
export interface Placement {
  readonly buffer: GPUBuffer;
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly wide: boolean;
}

/** Counters a test or benchmark can read. */
export interface GpuStats {
  /** Compute pipelines created (shader compilations). */
  pipelines: number;
  /** Dispatches encoded. */
  dispatches: number;
}

/**
 * What the device and its executables share: the GPUDevice, the pipeline cache, the buffer pools
 * and the limits. Pipelines are cached by key (kernel, dtypes, rank, how tensors share buffers),
 * never by size, so a new batch size compiles nothing.
 */
export class GpuContext {
  readonly pipelines = new Map<string, GPUComputePipeline>();
  /**
   * The same pipelines by WGSL source: kernels with different keys can generate the same shader (an
   * identity cast and a strided copy, say), and on a software adapter each compile costs a lot.
   */
  private readonly bySource = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<number, { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout }>();
  readonly storage: BufferPool;
  readonly staging: BufferPool;
  readonly uniforms: BufferPool;
  readonly stats: GpuStats = { pipelines: 0, dispatches: 0 };
  readonly storageAlign: number;
  readonly maxBinding: number;
  readonly maxSlots: number;
  /** Reads, writes, compiles and runs in flight: settled with a KilnError when the device ends. */
  readonly pending = new PendingWork();
  /** Why the device can no longer be used (its owner disposed it, or it was lost); null while it can. */
  private ended: { readonly disposed: boolean; readonly reason: string } | null = null;

  constructor(
    readonly name: string,
    readonly gpu: GPUDevice,
  ) {
    this.storage = new BufferPool(
      gpu,
      BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
      `${name} storage`,
    );
    this.staging = new BufferPool(gpu, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `${name} readback`);
    this.uniforms = new BufferPool(gpu, BufferUsage.UNIFORM | BufferUsage.COPY_DST, `${name} params`);
    this.storageAlign = gpu.limits.minStorageBufferOffsetAlignment;
    this.maxBinding = gpu.limits.maxStorageBufferBindingSize;
    this.maxSlots = gpu.limits.maxStorageBuffersPerShaderStage;
  }

  get alive(): boolean {
    return this.ended === null;
  }

  checkAlive(what: string): void {
    if (this.ended !== null) throw this.endError(what);
  }

  /**
   * Work cut short by the end of the device. Disposal is the owner's doing, so the work it cuts
   * short is 'cancelled' (callers may leave it unawaited); a lost device is a 'runtime' failure.
   */
  private endError(what: string): KilnError {
    const { disposed, reason } = this.ended!;
    return disposed
      ? deviceDisposed(this.name, what)
      : new KilnError('runtime', `${this.name}: ${what}: the WebGPU device was lost (${reason})`);
  }

  /**
   * Marks the device ended and rejects the work in flight, naming it. The first cause stands: the
   * loss that disposal itself causes is still reported as disposal.
   */
  end(disposed: boolean, reason: string): void {
    if (this.ended !== null) return;
    this.ended = { disposed, reason };
    this.pending.cancel((what) => this.endError(`${what} (still pending)`));
  }

  private layout(slots: number): { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout } {
    let layout = this.layouts.get(slots);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform' } },
      ];
      for (let i = 0; i < slots; i++) {
        entries.push({ binding: i + 1, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } });
      }
      const group = this.gpu.createBindGroupLayout({ entries });
      layout = { group, pipeline: this.gpu.createPipelineLayout({ bindGroupLayouts: [group] }) };
      this.layouts.set(slots, layout);
    }
    return layout;
  }

  private pipeline(d: Dispatch, tensors: readonly BoundTensor[], slots: number): GPUComputePipeline {
    const key = pipelineKey(d, tensors, slots);
    let p = this.pipelines.get(key);
    if (!p) {
      const code = shaderSource(d, tensors, slots);
      p = this.bySource.get(code);
      if (!p) {
        const module = this.gpu.createShaderModule({ code, label: d.key });
        p = this.gpu.createComputePipeline({
          layout: this.layout(slots).pipeline,
          compute: { module, entryPoint: 'main' },
          label: d.key,
        });
        this.bySource.set(code, p);
        this.stats.pipelines++;
      }
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Encodes one dispatch. Tensors that share a GPUBuffer share one binding covering all of them
   * (WebGPU forbids a writable binding overlapping another), and each tensor's offset inside its
   * binding goes into the uniform after the kernel's own parameters.
   */
  encode(pass: GPUComputePassEncoder, d: Dispatch, places: readonly Placement[], uniform: GPUBuffer): void {
    if (d.workgroups === 0) return;
    const slotOf = new Map<GPUBuffer, number>();
    const ranges: { start: number; end: number; buffer: GPUBuffer }[] = [];
    for (const p of places) {
      let s = slotOf.get(p.buffer);
      if (s === undefined) {
        s = ranges.length;
        slotOf.set(p.buffer, s);
        ranges.push({ start: p.byteOffset, end: p.byteOffset + p.byteLength, buffer: p.buffer });
      } else {
        const r = ranges[s]!;
        r.start = Math.min(r.start, p.byteOffset);
        r.end = Math.max(r.end, p.byteOffset + p.byteLength);
      }
    }
    if (ranges.length > this.maxSlots) {
      throw new KilnError(
        'unsupported',
        `${this.name}: a kernel would bind ${ranges.length} buffers; this adapter allows ${this.maxSlots}`,
      );
    }
    for (const r of ranges) {
      r.start = Math.floor(r.start / this.storageAlign) * this.storageAlign;
      r.end = Math.min(r.buffer.size, Math.max(r.start + 4, Math.ceil(r.end / 4) * 4));
      if (r.end - r.start > this.maxBinding) {
        throw new KilnError(
          'unsupported',
          `${this.name}: a kernel would bind ${r.end - r.start} bytes of one buffer; this adapter allows ${this.maxBinding}`,
        );
      }
    }
    const bound: BoundTensor[] = d.tensors.map((t, k) => ({
      dtype: t.dtype,
      wide: places[k]!.wide,
      slot: slotOf.get(places[k]!.buffer)!,
    }));
    const words = new Uint32Array(uniformWords(d.params.length, places.length));
    d.params.forEach((v, i) => {
      words[i] = v >>> 0;
    });
    places.forEach((p, k) => {
      const rel = p.byteOffset - ranges[bound[k]!.slot]!.start;
      words[d.params.length + k] = d.tensors[k]!.dtype === 'bool' && !p.wide ? rel : rel / 4;
    });
    this.gpu.queue.writeBuffer(uniform, 0, words);
    const pipeline = this.pipeline(d, bound, ranges.length);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: uniform, size: words.byteLength } },
    ];
    ranges.forEach((r, i) => {
      entries.push({
        binding: i + 1,
        resource: { buffer: r.buffer, offset: r.start, size: r.end - r.start },
      });
    });
    const group = this.gpu.createBindGroup({ layout: this.layout(ranges.length).group, entries });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const x = Math.min(d.workgroups, 65535);
    pass.dispatchWorkgroups(x, Math.ceil(d.workgroups / x));
    this.stats.dispatches++;
  }

  /** Bytes of uniform a dispatch needs. */
  static uniformBytes(d: Dispatch): number {
    return uniformWords(d.params.length, d.tensors.length) * 4;
  }

  destroy(): void {
    this.storage.close();
    this.staging.close();
    this.uniforms.close();
    this.pipelines.clear();
    this.bySource.clear();
  }
}
