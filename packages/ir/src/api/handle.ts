import type { TensorValue } from '../attrs.js';
import type { DType } from '../dtype.js';
import type { OpName } from '../ops/index.js';
import type { Shape } from '../shape.js';

/**
 * Where ops go. The functional API (`add`, `matmul`, ...) is written once against this interface,
 * so the same calls build a symbolic graph or (later) run eagerly or record a trace: the context
 * comes from the tensors passed in.
 */
export interface OpContext<T extends TensorHandle = TensorHandle> {
  apply(op: OpName, inputs: readonly T[], attrs: Readonly<Record<string, unknown>>, name?: string): T[];
  constant(value: TensorValue, name?: string): T;
}

export interface TensorHandle {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly context: OpContext;
}

export function isTensorHandle(x: unknown): x is TensorHandle {
  return typeof x === 'object' && x !== null && 'context' in x && 'dtype' in x && 'shape' in x;
}
