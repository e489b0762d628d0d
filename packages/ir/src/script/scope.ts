import { KilnError } from '../errors.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import type { ValueId } from '../graph/graph.js';
import type { TensorType } from '../shape.js';
import type { SValue } from './values.js';

/**
 * Where lowered code goes. The function body lowers into the root frame (the scripted graph);
 * each branch of a tensor `if` and the condition and body of a tensor loop lower into a child frame
 * with a graph of its own, which becomes a region.
 *
 * Regions do not capture, so a child frame turns every tensor it reads from an enclosing frame
 * into a placeholder of its own graph, and remembers the outer tensor: those become the operands
 * of the cond or while node. Assignments in a child frame to variables of enclosing frames are
 * kept in its `overlay` rather than in the variable, so that the other branch still sees the value
 * from before the `if`, and the node's outputs can be written back once both are lowered.
 */
export class Frame {
  /** Outer tensors this frame read (keyed by their id in the parent's graph) and their stand-ins. */
  readonly captured = new Map<ValueId, { readonly outer: SymbolicTensor; readonly inner: SymbolicTensor }>();
  readonly overlay = new Map<Binding, SValue>();
  private placeholders = 0;

  constructor(
    readonly graph: Graph,
    readonly parent: Frame | null,
    /**
     * A probe frame evaluates an expression to see whether it is a compile-time value: it reads
     * outer tensors through stand-ins without registering them, so nothing outside it changes.
     */
    readonly probe = false,
  ) {}

  /** `t` as a value of this frame's graph, captured through every frame in between. */
  use(t: SymbolicTensor): SymbolicTensor {
    if (t.graph === this.graph) return t;
    if (this.probe) return this.param(t.type);
    if (!this.parent) throw new KilnError('runtime', 'script: a tensor escaped the region that computed it');
    const outer = this.parent.use(t);
    const known = this.captured.get(outer.id);
    if (known) return known.inner;
    const inner = this.param(outer.type);
    this.captured.set(outer.id, { outer, inner });
    return inner;
  }

  /** A fresh placeholder of this frame's graph: a carried value, or an operand it did not read. */
  param(type: TensorType): SymbolicTensor {
    return this.graph.placeholder(type.dtype, type.shape, `in${this.placeholders++}`);
  }
}

export type BindingKind = 'let' | 'const' | 'param' | 'capture';

/** A variable: declared in a scope, owned by the frame where it was declared. */
export interface Binding {
  readonly name: string;
  readonly kind: BindingKind;
  readonly owner: Frame;
  value: SValue;
}

/** Lexical scopes: a block's let/const, a function's parameters, its captures. */
export class Scope {
  readonly vars = new Map<string, Binding>();
  constructor(readonly parent: Scope | null) {}

  declare(name: string, kind: BindingKind, value: SValue, owner: Frame): Binding {
    const binding: Binding = { name, kind, owner, value };
    this.vars.set(name, binding);
    return binding;
  }

  lookup(name: string): Binding | undefined {
    for (let s: Scope | null = this; s; s = s.parent) {
      const b = s.vars.get(name);
      if (b) return b;
    }
    return undefined;
  }
}

/** A variable's value as seen from `frame`: the innermost overlay between them, else its own. */
export function readBinding(b: Binding, frame: Frame): SValue {
  for (let f: Frame | null = frame; f && f !== b.owner; f = f.parent) {
    const v = f.overlay.get(b);
    if (v !== undefined) return v;
  }
  return b.value;
}

export function writeBinding(b: Binding, value: SValue, frame: Frame): void {
  if (frame === b.owner) b.value = value;
  else frame.overlay.set(b, value);
}
