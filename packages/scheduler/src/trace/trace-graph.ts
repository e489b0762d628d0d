import {
  Graph,
  type HostTensor,
  KilnError,
  type OpName,
  type ReadKind,
  type SymbolicTensor,
  type TensorHandle,
  type TensorValue,
  userLocation,
} from '@kiln/ir';
import type { EagerContext } from '../eager/context.js';
import { Tensor } from '../eager/tensor.js';

/** What reading a traced value does: fail (compile, strict trace) or warn and freeze the branch. */
export type ReadPolicy = 'error' | 'freeze';

/** Raised when traced code reads a tensor's value to steer JS: the graph cannot follow the data. */
export class GraphBreak extends KilnError {
  override readonly name = 'GraphBreak';
  constructor(
    message: string,
    readonly location: string | undefined,
  ) {
    super('unsupported', message);
  }
}

const warned = new Set<string>();

/**
 * The graph a trace records into. It sits one level above eager tensors, so an eager tensor the
 * traced function closes over (a weight) is lifted into a graph input, once per tensor. With the
 * 'freeze' policy every op also runs eagerly on the example values (a shadow), so that a read can
 * answer, with a warning that the branch it steers is now fixed in the graph.
 */
export class TraceGraph extends Graph {
  override readonly level: number;
  readonly captures = new Map<Tensor, SymbolicTensor>();
  private readonly shadows = new Map<number, Tensor>();

  constructor(
    readonly eager: EagerContext,
    readonly policy: ReadPolicy,
    readonly fnName: string,
  ) {
    super();
    this.level = eager.level + 1;
  }

  /** A graph input standing for `example` (its shadow is the example itself). */
  input(name: string, example: Tensor): SymbolicTensor {
    const p = this.placeholder(example.dtype, example.shape, name);
    if (this.policy === 'freeze') this.shadows.set(p.id, example);
    return p;
  }

  lift(handle: TensorHandle): SymbolicTensor {
    if (!(handle instanceof Tensor) || handle.context !== this.eager) {
      throw new KilnError(
        'invalid-argument',
        `trace of ${this.fnName}: cannot capture ${String(handle)}; only eager tensors on ${this.eager.device.name}`,
      );
    }
    let p = this.captures.get(handle);
    if (!p) {
      handle.view(`trace of ${this.fnName}`);
      p = this.input(`capture${this.captures.size}`, handle);
      this.captures.set(handle, p);
    }
    return p;
  }

  override apply(
    op: OpName,
    inputs: readonly SymbolicTensor[],
    attrs: Readonly<Record<string, unknown>>,
    name?: string,
  ): SymbolicTensor[] {
    const outs = super.apply(op, inputs, attrs, name);
    // Placeholders get their shadow from input(); everything else runs eagerly alongside.
    if (this.policy === 'freeze' && op !== 'placeholder') {
      const values =
        op === 'constant'
          ? [this.eager.constant(attrs.value as TensorValue)]
          : this.eager.apply(
              op,
              inputs.map((t) => this.shadows.get(t.id)!),
              attrs,
            );
      outs.forEach((t, k) => this.shadows.set(t.id, values[k]!));
    }
    return outs;
  }

  override readValue(tensor: SymbolicTensor, how: ReadKind): HostTensor {
    const location = userLocation();
    const where = location ? ` at ${location}` : '';
    const what = `${this.fnName} reads the value of traced tensor ${tensor} (${how === 'toPrimitive' ? 'converting it to a number' : `${how}()`})${where}`;
    if (this.policy === 'error') {
      throw new GraphBreak(
        `${what}: a graph cannot follow JS control flow that depends on tensor values. Use script() to keep the branch, or trace with { strict: false } to freeze it`,
        location,
      );
    }
    const key = `${this.fnName}${where}`;
    if (!warned.has(key)) {
      warned.add(key);
      console.warn(
        `kiln trace warning: ${what}; the branch it steers is frozen into the graph as it went for the example inputs, and other inputs will take the same path`,
      );
    }
    return this.shadows.get(tensor.id)!.toHostSync();
  }

  /** Frees the shadow values (not the example inputs or captures, which the caller owns). */
  disposeShadows(keepAlive: ReadonlySet<Tensor>): void {
    for (const t of this.shadows.values()) if (!keepAlive.has(t)) t.dispose();
    this.shadows.clear();
  }
}
