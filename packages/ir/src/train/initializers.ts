import type { OpContext, TensorHandle } from '../api/handle.js';
import { randomNormal, randomUniform } from '../api/ops.js';
import { invalidArgument } from '../errors.js';
import type { ConcreteShape } from '../shape.js';

/**
 * Weight initializers on the counter-based RNG: the same seed gives the same weights on every
 * device and in every process, so a model is reproducible from its graph alone.
 */
export interface InitOptions {
  readonly seed: number;
}

/** Fan-in and fan-out: a dense kernel is [in, out]; a conv kernel [kh, kw, in, out]. */
export function fans(shape: ConcreteShape): { fanIn: number; fanOut: number } {
  if (shape.length < 2)
    throw invalidArgument(`initializer: shape [${shape.join(',')}] needs at least 2 dimensions`);
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[shape.length - 2]! * receptive, fanOut: shape[shape.length - 1]! * receptive };
}

/** Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fanIn + fanOut)). For tanh/sigmoid layers. */
export function glorotUniform<T extends TensorHandle>(
  ctx: OpContext<T>,
  shape: ConcreteShape,
  { seed }: InitOptions,
): T {
  const { fanIn, fanOut } = fans(shape);
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return randomUniform(ctx, shape, { seed, low: -limit, high: limit, name: 'glorotUniform' });
}

/** He normal: N(0, 2 / fanIn). For ReLU layers. */
export function heNormal<T extends TensorHandle>(
  ctx: OpContext<T>,
  shape: ConcreteShape,
  { seed }: InitOptions,
): T {
  const { fanIn } = fans(shape);
  return randomNormal(ctx, shape, { seed, stddev: Math.sqrt(2 / fanIn), name: 'heNormal' });
}
