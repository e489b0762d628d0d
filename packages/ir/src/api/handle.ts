import type { TensorValue } from '../attrs.js';
import type { DType } from '../dtype.js';
import type { OpName } from '../ops/index.js';
import type { Shape } from '../shape.js';

/**
 * Where ops go. The functional API (`add`, `matmul`, ...) is written once against this interface,
 * so the same calls build a symbolic graph, run eagerly on a device, or record a trace: the
 * context comes from the tensors passed in.
 */
export interface OpContext<T extends TensorHandle = TensorHandle> {
  apply(op: OpName, inputs: readonly T[], attrs: Readonly<Record<string, unknown>>, name?: string): T[];
  constant(value: TensorValue, name?: string): T;
  /**
   * Contexts nest: eager is level 0, a trace or compile of a function is one level above the
   * context it runs in. When inputs mix levels, the op goes to the highest, which lifts the others.
   */
  readonly level: number;
  /** Brings a tensor of a lower-level context into this one (a trace captures an eager tensor). */
  lift?(handle: TensorHandle): T;
}

export interface TensorHandle {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly context: OpContext;
}

export function isTensorHandle(x: unknown): x is TensorHandle {
  return typeof x === 'object' && x !== null && 'context' in x && 'dtype' in x && 'shape' in x;
}
