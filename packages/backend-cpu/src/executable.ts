import {
  atNode,
  type BufferView,
  type ConcreteType,
  DTYPE_INFO,
  type Executable,
  formatType,
  type HostArray,
  KilnError,
  type Subgraph,
  shapesEqual,
  sizeOf,
} from '@kiln/ir';
import { viewArray } from './buffer.js';
import { kernelFor } from './kernels/index.js';
import type { KernelFn } from './kernels/kernel.js';

interface Step {
  readonly run: KernelFn;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly node: Subgraph['nodes'][number];
}

/**
 * A subgraph compiled for the CPU: kernels instantiated for their concrete shapes, intermediate
 * buffers allocated once, results written straight into the bound output views.
 */
export class CpuExecutable implements Executable {
  private readonly steps: Step[] = [];
  private readonly scratch = new Map<number, HostArray>();
  /** Result positions whose value is produced by a step and can be written in place. */
  private readonly direct = new Map<number, number>();
  private readonly inTypes: ConcreteType[];
  private readonly outTypes: ConcreteType[];
  private disposed = false;

  constructor(
    private readonly device: string,
    private readonly subgraph: Subgraph,
  ) {
    const type = (v: number) => subgraph.values[v]!.type as ConcreteType;
    this.inTypes = subgraph.inputs.map(type);
    this.outTypes = subgraph.results.map(type);
    const isInput = new Set(subgraph.inputs);
    subgraph.results.forEach((v, i) => {
      if (!isInput.has(v) && ![...this.direct.values()].includes(v)) this.direct.set(i, v);
    });
    const directValues = new Set(this.direct.values());
    for (const node of subgraph.nodes) {
      if (node.op === 'placeholder' && node.outputs.every((v) => isInput.has(v))) continue;
      const factory = kernelFor(node.op);
      if (!factory)
        throw atNode(node, new KilnError('unsupported', `the cpu device has no kernel for ${node.op}`));
      let run: KernelFn;
      try {
        run = factory({ attrs: node.attrs, inputs: node.inputs.map(type), outputs: node.outputs.map(type) });
      } catch (e) {
        throw atNode(node, e);
      }
      this.steps.push({ run, inputs: node.inputs, outputs: node.outputs, node });
      for (const v of node.outputs) {
        if (!directValues.has(v))
          this.scratch.set(v, DTYPE_INFO[type(v).dtype].create(sizeOf(type(v).shape)));
      }
    }
  }

  runSync(inputs: readonly BufferView[], outputs: readonly BufferView[]): void {
    if (this.disposed) throw new KilnError('invalid-argument', 'run: the executable was disposed');
    const inArrays = this.bind(inputs, this.inTypes, 'input');
    const outArrays = this.bind(outputs, this.outTypes, 'output');
    const env = new Map<number, HostArray>(this.scratch);
    this.subgraph.inputs.forEach((v, i) => env.set(v, inArrays[i]!));
    for (const [i, v] of this.direct) env.set(v, outArrays[i]!);
    for (const step of this.steps) {
      try {
        step.run(
          step.inputs.map((v) => env.get(v)!),
          step.outputs.map((v) => env.get(v)!),
        );
      } catch (e) {
        throw atNode(step.node, e);
      }
    }
    this.subgraph.results.forEach((v, i) => {
      if (this.direct.get(i) !== v) outArrays[i]!.set(env.get(v)!);
    });
  }

  async run(inputs: readonly BufferView[], outputs: readonly BufferView[]): Promise<void> {
    this.runSync(inputs, outputs);
  }

  dispose(): void {
    this.disposed = true;
    this.scratch.clear();
  }

  private bind(views: readonly BufferView[], types: readonly ConcreteType[], role: string): HostArray[] {
    if (views.length !== types.length) {
      throw new KilnError(
        'invalid-argument',
        `run: got ${views.length} ${role} views for ${types.length} ${role}s`,
      );
    }
    return views.map((view, i) => {
      const t = types[i]!;
      if (view.dtype !== t.dtype || !shapesEqual(view.shape, t.shape)) {
        throw new KilnError(
          'invalid-argument',
          `run: ${role} ${i} is bound to ${formatType(view)} but the subgraph needs ${formatType(t)}`,
        );
      }
      return viewArray(this.device, view, `run: ${role} ${i}`);
    });
  }
}
