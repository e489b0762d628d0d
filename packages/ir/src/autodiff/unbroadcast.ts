import type { TensorHandle } from '../api/handle.js';
import { reshape, sum } from '../api/ops.js';
import { KilnError } from '../errors.js';
import { formatShape, type Shape, shapesEqual } from '../shape.js';

/**
 * The cotangent of an input that was broadcast: summed over the dimensions broadcasting added or
 * stretched, back to the input's shape. An unknown dimension is taken to match (it broadcasts
 * only from a known 1).
 */
export function unbroadcast<T extends TensorHandle>(g: T, shape: Shape): T {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.shape.length; d++) {
    if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const summed = axes.length ? sum(g, axes, { keepDims: true }) : g;
  return summed.shape.length === shape.length ? summed : reshape(summed, toReshapeTarget(shape));
}

/** A shape as a reshape target: at most one unknown dimension, written -1. */
export function toReshapeTarget(shape: Shape): number[] {
  if (shape.filter((d) => d === null).length > 1) {
    throw new KilnError(
      'unsupported',
      `a gradient needs to reshape to ${formatShape(shape)}, which has more than one unknown dimension`,
    );
  }
  return shape.map((d) => (d === null ? -1 : d));
}
