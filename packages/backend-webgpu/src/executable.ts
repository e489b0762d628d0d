import {
  atNode,
  type BufferView,
  byteSizeOf,
  type ConcreteType,
  describeNode,
  type Executable,
  formatType,
  KilnError,
  type Node,
  type Subgraph,
  shapesEqual,
  sizeOf,
  type ValueId,
} from '@kiln/ir';
import { checkView, usable, type WebGpuBuffer } from './buffer.js';
import { GpuContext, type Placement } from './context.js';
import { fromGpuError, popScopes, pushScopes } from './gpu-errors.js';
import { copyBytes, packBools } from './kernels/copy.js';
import { kernelFor } from './kernels/index.js';
import type { Dispatch, TensorRef } from './shader.js';

interface Step {
  readonly node: Node;
  readonly dispatches: readonly { readonly d: Dispatch; readonly uniform: GPUBuffer }[];
}

/** A result copied into its view after the steps (from a value, or from an earlier result's view). */
interface Copy {
  readonly from: ValueId | { result: number };
  readonly to: number;
  readonly bytes: number;
  readonly d: Dispatch;
  readonly uniform: GPUBuffer;
}

const valueRef = (id: ValueId): TensorRef => ({ kind: 'value', id });

/** The nodes of a subgraph for messages about work on it: one named in full, more counted. */
export function describeWork(subgraph: Subgraph): string {
  const nodes = subgraph.nodes.filter((n) => n.op !== 'placeholder');
  if (nodes.length === 1) return describeNode(nodes[0]!);
  const ops = nodes.slice(0, 3).map((n) => `${n.op} #${n.id}`);
  return `${nodes.length} nodes (${ops.join(', ')}${nodes.length > 3 ? ', ...' : ''})`;
}

/**
 * A subgraph compiled for WebGPU: each node a short list of dispatches (usually one), every
 * pipeline taken from the device's cache, intermediates and scratch in pooled buffers allocated
 * once here. `run` encodes each node in its own command encoder inside error scopes, so a device
 * error names the node it came from, submits everything at once, and resolves when the queue has
 * the work (a later `read` observes it); it never waits for the GPU to finish.
 */
export class WebGpuExecutable implements Executable {
  private readonly steps: Step[] = [];
  private readonly copies: Copy[] = [];
  private readonly owned: GPUBuffer[] = [];
  private readonly uniforms: GPUBuffer[] = [];
  private readonly values = new Map<ValueId, GPUBuffer>();
  private readonly temps: { buffer: GPUBuffer; bytes: number }[] = [];
  private readonly direct = new Map<number, ValueId>();
  private readonly inTypes: ConcreteType[];
  private readonly outTypes: ConcreteType[];
  private readonly what: string;
  private disposed = false;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly subgraph: Subgraph,
  ) {
    const type = (v: ValueId) => subgraph.values[v]!.type as ConcreteType;
    this.inTypes = subgraph.inputs.map(type);
    this.outTypes = subgraph.results.map(type);
    this.what = `running ${describeWork(subgraph)}`;
  }

  static async compile(ctx: GpuContext, subgraph: Subgraph, what: string): Promise<WebGpuExecutable> {
    ctx.checkAlive(what);
    const exe = new WebGpuExecutable(ctx, subgraph);
    try {
      await exe.build();
    } catch (e) {
      // Buffers the device refused are invalid: destroy them rather than pool them.
      exe.dispose(true);
      throw e;
    }
    return exe;
  }

  private async build(): Promise<void> {
    const { subgraph, ctx } = this;
    const type = (v: ValueId) => subgraph.values[v]!.type as ConcreteType;
    const isInput = new Set(subgraph.inputs);
    subgraph.results.forEach((v, i) => {
      if (!isInput.has(v) && ![...this.direct.values()].includes(v)) this.direct.set(i, v);
    });
    const directValues = new Set(this.direct.values());
    const checks: Promise<void>[] = [];
    for (const node of subgraph.nodes) {
      if (node.op === 'placeholder' && node.outputs.every((v) => isInput.has(v))) continue;
      const factory = kernelFor(node.op);
      if (!factory)
        throw atNode(node, new KilnError('unsupported', `${ctx.name} has no kernel for ${node.op}`));
      pushScopes(ctx.gpu);
      let step: Step;
      try {
        for (const v of node.outputs) {
          if (!directValues.has(v))
            this.values.set(v, this.own(ctx.storage.acquire(Math.max(4, byteSizeOf(type(v))))));
        }
        step = this.lower(node, factory);
      } catch (e) {
        await popScopes(ctx.gpu);
        throw atNode(node, e);
      }
      this.steps.push(step);
      checks.push(
        popScopes(ctx.gpu).then((err) => {
          if (err) throw atNode(node, fromGpuError(ctx.name, err, `allocating memory for ${node.op}`));
        }),
      );
    }
    // Results that are inputs, or repeat an earlier result, are copied into their views after the steps.
    subgraph.results.forEach((v, i) => {
      if (this.direct.get(i) === v) return;
      const first = [...this.direct].find(([, w]) => w === v)?.[0];
      const bytes = byteSizeOf(type(v));
      if (bytes === 0) return;
      const d = copyBytes(valueRef(v), valueRef(v), bytes);
      this.copies.push({
        from: first === undefined ? v : { result: first },
        to: i,
        bytes,
        d,
        uniform: this.uniform(d),
      });
    });
    await Promise.all(checks);
  }

  private own(buffer: GPUBuffer): GPUBuffer {
    this.owned.push(buffer);
    return buffer;
  }

  private uniform(d: Dispatch): GPUBuffer {
    const u = this.ctx.uniforms.acquire(GpuContext.uniformBytes(d));
    this.uniforms.push(u);
    return u;
  }

  private temp(bytes: number, wide: boolean): TensorRef {
    const buffer = this.own(this.ctx.storage.acquire(Math.max(4, bytes)));
    this.temps.push({ buffer, bytes });
    return { kind: 'temp', index: this.temps.length - 1, wide };
  }

  /** The node's dispatches, with bool results redirected to word-wide scratch and packed after. */
  private lower(node: Node, factory: NonNullable<ReturnType<typeof kernelFor>>): Step {
    const type = (v: ValueId) => this.subgraph.values[v]!.type as ConcreteType;
    const dispatches = factory({
      attrs: node.attrs,
      inputs: node.inputs.map(type),
      outputs: node.outputs.map(type),
      ins: node.inputs.map(valueRef),
      outs: node.outputs.map(valueRef),
      temp: (bytes) => this.temp(bytes, false),
      upload: (data) => {
        const ref = this.temp(data.byteLength, false);
        if (ref.kind === 'temp' && data.byteLength > 0) {
          const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
          padded.set(data);
          this.ctx.gpu.queue.writeBuffer(this.temps[ref.index]!.buffer, 0, padded);
        }
        return ref;
      },
    });
    const wide = new Map<ValueId, TensorRef>();
    const out: Dispatch[] = dispatches.map((d) => ({
      ...d,
      tensors: d.tensors.map((t) => {
        if (t.access !== 'write' || t.dtype !== 'bool' || t.ref.kind !== 'value') return t;
        const id = t.ref.id;
        let ref = wide.get(id);
        if (!ref) {
          ref = this.temp(4 * sizeOf(type(id).shape), true);
          wide.set(id, ref);
        }
        return { ...t, ref };
      }),
    }));
    for (const [id, ref] of wide) {
      const n = sizeOf(type(id).shape);
      if (n > 0) out.push(packBools(ref, valueRef(id), n));
    }
    return { node, dispatches: out.map((d) => ({ d, uniform: this.uniform(d) })) };
  }

  run(inputs: readonly BufferView[], outputs: readonly BufferView[]): Promise<void> {
    return this.ctx.pending.track(this.what, this.runNow(inputs, outputs));
  }

  private async runNow(inputs: readonly BufferView[], outputs: readonly BufferView[]): Promise<void> {
    if (this.disposed) throw new KilnError('invalid-argument', 'run: the executable was disposed');
    const { ctx } = this;
    ctx.checkAlive(this.what);
    this.bind(inputs, this.inTypes, 'input');
    this.bind(outputs, this.outTypes, 'output');
    const type = (v: ValueId) => this.subgraph.values[v]!.type as ConcreteType;
    const where = new Map<ValueId, { buffer: GPUBuffer; byteOffset: number }>();
    // bind() checked that every view's buffer is a live WebGpuBuffer of this device.
    const gpuOf = (view: BufferView) => (view.buffer as WebGpuBuffer).gpu;
    this.subgraph.inputs.forEach((v, i) =>
      where.set(v, { buffer: gpuOf(inputs[i]!), byteOffset: inputs[i]!.byteOffset }),
    );
    for (const [i, v] of this.direct)
      where.set(v, { buffer: gpuOf(outputs[i]!), byteOffset: outputs[i]!.byteOffset });
    for (const [v, buffer] of this.values) where.set(v, { buffer, byteOffset: 0 });
    const place = (ref: TensorRef): Placement => {
      if (ref.kind === 'temp') {
        const t = this.temps[ref.index]!;
        const at = ref.byteOffset ?? 0;
        return { buffer: t.buffer, byteOffset: at, byteLength: t.bytes - at, wide: ref.wide };
      }
      const w = where.get(ref.id)!;
      return { ...w, byteLength: byteSizeOf(type(ref.id)), wide: false };
    };

    const commands: GPUCommandBuffer[] = [];
    const checks: Promise<KilnError | null>[] = [];
    const encodeGroup = (what: Node | null, fn: (pass: GPUComputePassEncoder) => void) => {
      pushScopes(ctx.gpu);
      let thrown: unknown;
      try {
        const encoder = ctx.gpu.createCommandEncoder();
        const pass = encoder.beginComputePass();
        fn(pass);
        pass.end();
        commands.push(encoder.finish());
      } catch (e) {
        thrown = e;
      }
      checks.push(
        popScopes(ctx.gpu).then((err) => {
          const e =
            thrown ??
            (err ? fromGpuError(ctx.name, err, what ? `running ${what.op}` : 'copying results') : null);
          if (e === null) return null;
          return what ? atNode(what, e) : e instanceof KilnError ? e : new KilnError('runtime', String(e));
        }),
      );
    };
    for (const step of this.steps) {
      encodeGroup(step.node, (pass) => {
        for (const { d, uniform } of step.dispatches)
          ctx.encode(
            pass,
            d,
            d.tensors.map((t) => place(t.ref)),
            uniform,
          );
      });
    }
    if (this.copies.length > 0) {
      encodeGroup(null, (pass) => {
        for (const c of this.copies) {
          const src =
            typeof c.from === 'number'
              ? place(valueRef(c.from))
              : {
                  buffer: gpuOf(outputs[c.from.result]!),
                  byteOffset: outputs[c.from.result]!.byteOffset,
                  byteLength: c.bytes,
                  wide: false,
                };
          const dst = {
            buffer: gpuOf(outputs[c.to]!),
            byteOffset: outputs[c.to]!.byteOffset,
            byteLength: c.bytes,
            wide: false,
          };
          ctx.encode(pass, c.d, [src, dst], c.uniform);
        }
      });
    }
    pushScopes(ctx.gpu);
    ctx.gpu.queue.submit(commands);
    checks.push(
      popScopes(ctx.gpu).then((err) => (err ? fromGpuError(ctx.name, err, 'submitting work') : null)),
    );
    // A bound buffer the device failed to allocate explains any error its use caused: report it first.
    const bound = [...inputs, ...outputs].map((v, i) =>
      usable(v.buffer as WebGpuBuffer).then(
        () => null,
        (e: KilnError) =>
          new KilnError(
            e.code,
            `run: ${i < inputs.length ? `input ${i}` : `output ${i - inputs.length}`}: ${e.message}`,
            { cause: e },
          ),
      ),
    );
    const errors = [...(await Promise.all(bound)), ...(await Promise.all(checks))].filter((e) => e !== null);
    ctx.checkAlive(this.what);
    if (errors.length > 0) throw errors[0];
  }

  dispose(destroy = false): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.owned) {
      if (destroy) b.destroy();
      else this.ctx.storage.release(b);
    }
    for (const u of this.uniforms) this.ctx.uniforms.release(u);
    this.owned.length = 0;
    this.uniforms.length = 0;
  }

  private bind(views: readonly BufferView[], types: readonly ConcreteType[], role: string): void {
    if (views.length !== types.length) {
      throw new KilnError(
        'invalid-argument',
        `run: got ${views.length} ${role} views for ${types.length} ${role}s`,
      );
    }
    views.forEach((view, i) => {
      const t = types[i]!;
      if (view.dtype !== t.dtype || !shapesEqual(view.shape, t.shape)) {
        throw new KilnError(
          'invalid-argument',
          `run: ${role} ${i} is bound to ${formatType(view)} but the subgraph needs ${formatType(t)}`,
        );
      }
      checkView(this.ctx.name, view, `run: ${role} ${i}`);
    });
  }
}
