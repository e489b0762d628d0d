import type { Shape } from '../shape.js';
import type { TensorHandle } from './handle.js';
import { apply } from './ops.js';

/**
 * The functional API of the neural-network ops: convolution, pooling and softmax cross-entropy,
 * with their gradient ops. Images are NHWC and filters [KH, KW, C, F], as in TensorFlow.
 */

/** One size for both spatial axes, or [height, width]. */
export type Pair = number | readonly [number, number];
/** 'valid' (no padding), 'same' (TensorFlow's), or explicit [[top, bottom], [left, right]]. */
export type Padding2d = 'valid' | 'same' | readonly [readonly [number, number], readonly [number, number]];

export interface Conv2dOptions {
  /** Default 1. */
  readonly strides?: Pair;
  /** Default 'valid'. */
  readonly padding?: Padding2d;
  /** Default 1. */
  readonly dilations?: Pair;
  readonly name?: string;
}

export interface PoolOptions {
  readonly windowSize: Pair;
  /** Default: the window size (windows that tile the input). */
  readonly strides?: Pair;
  /** Default 'valid'. */
  readonly padding?: 'valid' | 'same';
  readonly name?: string;
}

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function convAttrs(o: Conv2dOptions): Record<string, unknown> {
  const padding = o.padding ?? 'valid';
  return {
    strides: pair(o.strides ?? 1),
    dilations: pair(o.dilations ?? 1),
    ...(typeof padding === 'string'
      ? { padding, pads: [] }
      : { padding: 'explicit', pads: [pair(padding[0]), pair(padding[1])] }),
  };
}

function poolAttrs(o: PoolOptions): Record<string, unknown> {
  return {
    windowSize: pair(o.windowSize),
    strides: pair(o.strides ?? o.windowSize),
    padding: o.padding ?? 'valid',
  };
}

/** x [N, H, W, C] convolved with filter [KH, KW, C, F]: [N, OH, OW, F]. */
export function conv2d<T extends TensorHandle>(x: T, filter: T, options: Conv2dOptions = {}): T {
  return apply('conv2d', [x, filter], convAttrs(options), options.name);
}

/**
 * The input gradient of `conv2d(x, filter, options)` given dy: [N, H, W, C]. `inputShape` is x's
 * shape; its height and width must be known, its batch and channels may be null (unknown).
 */
export function conv2dBackpropInput<T extends TensorHandle>(
  dy: T,
  filter: T,
  inputShape: Shape,
  options: Conv2dOptions = {},
): T {
  return apply('conv2dBackpropInput', [dy, filter], { ...convAttrs(options), inputShape }, options.name);
}

/**
 * The filter gradient of `conv2d(x, filter, options)` given dy: [KH, KW, C, F]. `filterShape` is
 * the filter's shape; KH and KW must be known, C and F may be null.
 */
export function conv2dBackpropFilter<T extends TensorHandle>(
  x: T,
  dy: T,
  filterShape: Shape,
  options: Conv2dOptions = {},
): T {
  return apply('conv2dBackpropFilter', [x, dy], { ...convAttrs(options), filterShape }, options.name);
}

/** The maximum of each window (NaN if the window holds one); padding never wins. */
export function maxPool<T extends TensorHandle>(x: T, options: PoolOptions): T {
  return apply('maxPool', [x], poolAttrs(options), options.name);
}

/** The mean of each window over the input elements it covers (padding is not counted). */
export function avgPool<T extends TensorHandle>(x: T, options: PoolOptions): T {
  return apply('avgPool', [x], poolAttrs(options), options.name);
}

/**
 * The input gradient of `maxPool(x, options)`: each window's dy goes to the first maximal element
 * of x in it (row-major window order; a NaN counts as maximal). `y` is the pooled output; it is
 * only checked for shape.
 */
export function maxPoolGrad<T extends TensorHandle>(x: T, y: T, dy: T, options: PoolOptions): T {
  return apply('maxPoolGrad', [x, y, dy], poolAttrs(options), options.name);
}

/**
 * The input gradient of `avgPool(x, options)`. `inputShape` is x's shape: height and width must be
 * known, batch and channels may be null (taken from dy).
 */
export function avgPoolGrad<T extends TensorHandle>(dy: T, inputShape: Shape, options: PoolOptions): T {
  return apply('avgPoolGrad', [dy], { ...poolAttrs(options), inputShape }, options.name);
}

/**
 * Per-example cross-entropy of softmax(logits) against label probabilities along the last axis:
 * sum(labels * (logsumexp(logits) - logits)), computed stably. [..., K] x [..., K] -> [...].
 */
export function softmaxCrossEntropy<T extends TensorHandle>(logits: T, labels: T, name?: string): T {
  return apply('softmaxCrossEntropy', [logits, labels], {}, name);
}

/**
 * Cross-entropy against integer class labels: logits [..., K], labels int32 [...] -> [...]. A label
 * outside [0, K) gives NaN.
 */
export function sparseSoftmaxCrossEntropy<T extends TensorHandle>(logits: T, labels: T, name?: string): T {
  return apply('sparseSoftmaxCrossEntropy', [logits, labels], {}, name);
}

/** Window geometry, shared by the op definitions and device kernels so they cannot disagree. */
export {
  type Geometry2d,
  type WindowAttrs,
  type WindowAxis,
  windowAxis,
  windowGeometry,
} from '../ops/conv.js';
