import type { TensorHandle } from '../api/handle.js';
import { reshape, where } from '../api/ops.js';
import { normalizeAxes, type Shape } from '../shape.js';
import { toReshapeTarget } from './unbroadcast.js';

/**
 * A reduction's cotangent `g` (shape of the reduced output) given back the reduced axes as size-1
 * dimensions, ready to broadcast against the input.
 */
export function restoreReducedDims<T extends TensorHandle>(
  g: T,
  inputShape: Shape,
  axes: readonly number[] | null,
  keepDims: boolean,
): T {
  if (keepDims) return g;
  const reduced = normalizeAxes(axes, inputShape.length, 'gradient');
  return reshape(g, toReshapeTarget(inputShape.map((d, i) => (reduced.includes(i) ? 1 : d))));
}

/**
 * `value` broadcast to the shape of `like`, without arithmetic on `like` (x * 0 + v would turn
 * infinities in `like` into NaN): where(true, value, like) takes the shape and not the values.
 */
export function broadcastLike<T extends TensorHandle>(value: T, like: T): T {
  return where(
    like.context.constant({ dtype: 'bool', shape: [], data: new Uint8Array([1]) }) as T,
    value,
    like,
  );
}
