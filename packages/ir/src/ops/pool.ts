import type { PoolOptions } from '../api/nn.js';
import * as nn from '../api/nn.js';
import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { invalidArgument, KilnError, shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { type RefTensor, refTensor, roundTo } from '../ref-tensor.js';
import { type ConcreteShape, type Dim, formatShape, formatType, sizeOf, type TensorType } from '../shape.js';
import { spatialOut, type WindowAttrs, windowGeometry } from './conv.js';
import {
  type CompositeOpDef,
  type ConcreteType,
  type ConformanceInput,
  type Cost,
  defineComposite,
  defineOp,
  elementBytes,
  type OpDef,
} from './op-def.js';
import { extractPatches, scatterPatches, windowCounts, windowPlan } from './windows.js';

/**
 * Max and average pooling over NHWC windows, with TensorFlow's padding: 'valid', or 'same' (output
 * ceil(size / stride)). Padding never contributes: maxPool takes the maximum of the input elements
 * a window covers, avgPool divides by how many there are. With either padding every window covers
 * at least one element.
 */

interface PoolAttrs {
  readonly windowSize: readonly number[];
  readonly strides: readonly number[];
  readonly padding: string;
}

const poolAttrs = {
  windowSize: attr.ints,
  strides: attr.ints,
  padding: attr.string.default('valid'),
};

/** Pool attributes as the window attributes convolution uses (no dilation, no explicit pads). */
const asWindow = (a: PoolAttrs): WindowAttrs => ({
  strides: a.strides,
  padding: a.padding,
  pads: [],
  dilations: [1, 1],
});

/** A pool's windows as windowPlan lays them out. */
function poolPlan(shape: readonly (number | null)[], a: PoolAttrs, op: string) {
  const w = asWindow(a);
  return { p: windowPlan(shape, a.windowSize[0]!, a.windowSize[1]!, w, op), w };
}

function checkPoolAttrs(op: string, a: PoolAttrs): void {
  const ok = (v: readonly number[]) => v.length === 2 && v.every((d) => d >= 1);
  if (!ok(a.windowSize))
    throw invalidArgument(`${op}: windowSize must be two integers >= 1, got [${a.windowSize.join(',')}]`);
  if (!ok(a.strides))
    throw invalidArgument(`${op}: strides must be two integers >= 1, got [${a.strides.join(',')}]`);
  if (a.padding !== 'valid' && a.padding !== 'same')
    throw invalidArgument(`${op}: padding must be 'valid' or 'same', got '${a.padding}'`);
}

function needFloat4D(op: string, t: TensorType, what: string): void {
  if (t.dtype !== 'float32' || t.shape.length !== 4) {
    throw shapeError(`${op}: ${what} has type ${formatType(t)}; need a float32 tensor of rank 4`);
  }
}

function unify(a: Dim, b: Dim, fail: () => never): Dim {
  if (a !== null && b !== null && a !== b) fail();
  return a ?? b;
}

/** The pooled shape of an NHWC input of shape `x`. */
function pooledShape(op: string, x: readonly Dim[], a: PoolAttrs): Dim[] {
  const [kh, kw] = a.windowSize as [number, number];
  const [oh, ow] = spatialOut(
    op,
    x,
    kh,
    kw,
    asWindow(a),
    () => `window ${kh}x${kw} over input ${formatShape(x)}`,
  );
  return [x[0]!, oh, ow, x[3]!];
}

/** `y` (a pooled tensor) has the shape pooling `x` gives. */
function checkPooled(op: string, want: readonly Dim[], y: TensorType, what: string, input: string): void {
  want.forEach((d, i) =>
    unify(d, y.shape[i]!, () => {
      throw shapeError(
        `${op}: ${what} ${formatType(y)} does not match the pooled shape ${formatShape(want)} of ${input}`,
      );
    }),
  );
}

/**
 * Calls `visit(yBase, xBases)` for every window: yBase is the flat index of output [b, oy, ox, 0],
 * xBases the flat indices of input [b, iy, ix, 0] the window covers, in row-major window order.
 */
function forEachWindow(
  xShape: ConcreteShape,
  a: PoolAttrs,
  visit: (yBase: number, xBases: readonly number[]) => void,
): ConcreteShape {
  const [n, h, w, c] = xShape as [number, number, number, number];
  const [kh, kw] = a.windowSize as [number, number];
  const [sh, sw] = a.strides as [number, number];
  const g = windowGeometry(h, w, kh, kw, asWindow(a), 'pool');
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < g.outH; oy++)
      for (let ox = 0; ox < g.outW; ox++) {
        const covered: number[] = [];
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - g.padTop + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - g.padLeft + kx;
            if (ix >= 0 && ix < w) covered.push(((b * h + iy) * w + ix) * c);
          }
        }
        visit(((b * g.outH + oy) * g.outW + ox) * c, covered);
      }
  return [n, g.outH, g.outW, c];
}

/** Index (into `bases`) of the first maximal element of channel `ch`: a NaN beats everything. */
export function firstMax(data: Float64Array, bases: readonly number[], ch: number): number {
  let best = -1;
  let value = 0;
  bases.forEach((base, i) => {
    const v = data[base + ch]!;
    if (best < 0 || (!Number.isNaN(value) && (v > value || Number.isNaN(v)))) {
      best = i;
      value = v;
    }
  });
  return best;
}

function poolOutput(x: RefTensor, a: PoolAttrs, reduce: (bases: readonly number[], ch: number) => number) {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const g = windowGeometry(h, w, a.windowSize[0]!, a.windowSize[1]!, asWindow(a), 'pool');
  const out = refTensor('float32', [n, g.outH, g.outW, c]);
  forEachWindow(x.shape, a, (yBase, bases) => {
    for (let ch = 0; ch < c; ch++) out.data[yBase + ch] = reduce(bases, ch);
  });
  roundTo('float32', out.data);
  return out;
}

// ---------------------------------------------------------------- conformance cases

function randomPool(rng: Prng, index: number) {
  const padding = index % 2 === 0 ? 'valid' : 'same';
  const windowSize = [rng.int(1, 3), rng.pick([1, 2, 3])];
  const strides = [rng.pick([1, 2, 3]), rng.pick([1, 2])];
  const h = Math.max(windowSize[0]!, rng.pick([1, 2, 3, 5, 7]));
  const w = Math.max(windowSize[1]!, rng.pick([1, 3, 4, 6]));
  const x = [index === 5 ? 0 : rng.pick([1, 1, 2, 3]), h, w, rng.pick([1, 2, 3])];
  const attrs = { windowSize, strides, padding };
  const g = windowGeometry(h, w, windowSize[0]!, windowSize[1]!, asWindow(attrs), 'pool case');
  const domain = index % 4 === 3 ? ('special' as const) : ('normal' as const);
  return { attrs, x, y: [x[0]!, g.outH, g.outW, x[3]!], domain };
}

const POOL_CASES = 22;
const f32 = (
  shape: readonly Dim[] | readonly number[],
  domain?: ConformanceInput['domain'],
): ConformanceInput =>
  domain
    ? { dtype: 'float32', shape: shape as number[], domain }
    : { dtype: 'float32', shape: shape as number[] };

/** Each window reads (or, for the gradients, writes) its kh * kw elements once per channel. */
const poolCost =
  (pooled: (inputs: readonly ConcreteType[], outputs: readonly ConcreteType[]) => ConcreteType) =>
  (inputs: readonly ConcreteType[], outputs: readonly ConcreteType[], a: PoolAttrs): Cost => ({
    flops: sizeOf(pooled(inputs, outputs).shape) * a.windowSize[0]! * a.windowSize[1]!,
    bytes: elementBytes(inputs) + elementBytes(outputs),
  });

const windowTolerance = (a: PoolAttrs) => Math.max(1, a.windowSize[0]! * a.windowSize[1]!);

/** A node's pool attributes as options of the functional API, for the gradient rules. */
const poolOptions = (a: PoolAttrs): PoolOptions => ({
  windowSize: a.windowSize as [number, number],
  strides: a.strides as [number, number],
  padding: a.padding as 'valid' | 'same',
});

// ---------------------------------------------------------------- maxPool and avgPool

export const maxPool: CompositeOpDef<typeof poolAttrs> = defineComposite({
  name: 'maxPool',
  kind: 'reduction',
  arity: 1,
  attrs: poolAttrs,
  infer([x], a) {
    checkPoolAttrs('maxPool', a);
    needFloat4D('maxPool', x!, 'input');
    return [{ dtype: 'float32', shape: pooledShape('maxPool', x!.shape, a) }];
  },
  reference: ([x], a) => [
    poolOutput(x!, a, (bases, ch) => bases.reduce((m, base) => Math.max(m, x!.data[base + ch]!), -Infinity)),
  ],
  cost: poolCost((_, [y]) => y!),
  // Padding is -inf, which never wins a max over real elements.
  decompose: ({ attrs, inputs: [x] }) => {
    const { p, w } = poolPlan(x!.shape, attrs, 'maxPool');
    const windows = k.reshape(extractPatches(x!, p, w, Number.NEGATIVE_INFINITY), [
      p.n,
      p.outH,
      p.outW,
      p.kh * p.kw,
      p.c,
    ]);
    return [k.max(windows, [3])];
  },
  cases(rng) {
    return Array.from({ length: POOL_CASES }, (_, i) => {
      const p = randomPool(rng, i);
      return { inputs: [f32(p.x, p.domain)], attrs: p.attrs };
    });
  },
  gradient: ({ attrs, inputs: [x], outputs: [y], cotangents: [dy] }) => [
    nn.maxPoolGrad(x!, y!, dy!, poolOptions(attrs)),
  ],
});

export const avgPool: CompositeOpDef<typeof poolAttrs> = defineComposite({
  name: 'avgPool',
  kind: 'reduction',
  arity: 1,
  attrs: poolAttrs,
  infer([x], a) {
    checkPoolAttrs('avgPool', a);
    needFloat4D('avgPool', x!, 'input');
    return [{ dtype: 'float32', shape: pooledShape('avgPool', x!.shape, a) }];
  },
  reference: ([x], a) => [
    poolOutput(x!, a, (bases, ch) => bases.reduce((s, base) => s + x!.data[base + ch]!, 0) / bases.length),
  ],
  cost: poolCost((_, [y]) => y!),
  // Padding adds zeros and is not counted, as in TensorFlow.
  decompose: ({ attrs, inputs: [x] }) => {
    const { p, w } = poolPlan(x!.shape, attrs, 'avgPool');
    const windows = k.reshape(extractPatches(x!, p, w, 0), [p.n, p.outH, p.outW, p.kh * p.kw, p.c]);
    return [k.div(k.sum(windows, [3]), windowCounts(x!, p, w))];
  },
  cases(rng) {
    return Array.from({ length: POOL_CASES }, (_, i) => {
      const p = randomPool(rng, i);
      return { inputs: [f32(p.x, p.domain)], attrs: p.attrs };
    });
  },
  tolerance: (_, a) => windowTolerance(a),
  gradient: ({ attrs, inputs: [x], cotangents: [dy] }) => {
    if (x!.shape[1] === null || x!.shape[2] === null) {
      throw new KilnError(
        'unsupported',
        `avgPool gradient needs a known input height and width; got ${formatShape(x!.shape)}`,
      );
    }
    return [nn.avgPoolGrad(dy!, x!.shape, poolOptions(attrs))];
  },
});

// ---------------------------------------------------------------- maxPoolGrad

/**
 * maxPool's input gradient: dy of each window goes to the first maximal element of x in it, in
 * row-major window order (ties go to the first; a NaN counts as maximal, as in argmax), and
 * overlapping windows add up. The argmax is recomputed from x: the second operand (the pooled
 * output y) is only checked for shape, so the result never depends on whether y is exact.
 */
export const maxPoolGrad: OpDef<typeof poolAttrs> = defineOp({
  name: 'maxPoolGrad',
  kind: 'reduction',
  arity: 3,
  attrs: poolAttrs,
  infer([x, y, dy], a) {
    const op = 'maxPoolGrad';
    checkPoolAttrs(op, a);
    needFloat4D(op, x!, 'input');
    needFloat4D(op, y!, 'y');
    needFloat4D(op, dy!, 'dy');
    const want = pooledShape(op, x!.shape, a);
    checkPooled(op, want, y!, 'y', formatType(x!));
    checkPooled(op, want, dy!, 'dy', formatType(x!));
    return [{ dtype: 'float32', shape: x!.shape }];
  },
  reference([x, , dy], a) {
    const out = refTensor('float32', x!.shape);
    const c = x!.shape[3]!;
    forEachWindow(x!.shape, a, (yBase, bases) => {
      for (let ch = 0; ch < c; ch++) {
        const i = firstMax(x!.data, bases, ch);
        if (i >= 0) out.data[bases[i]! + ch]! += dy!.data[yBase + ch]!;
      }
    });
    roundTo('float32', out.data);
    return [out];
  },
  cost: poolCost(([, , dy]) => dy!),
  cases(rng) {
    return Array.from({ length: POOL_CASES }, (_, i) => {
      const p = randomPool(rng, i);
      return { inputs: [f32(p.x, p.domain), f32(p.y), f32(p.y)], attrs: p.attrs };
    });
  },
  tolerance: (_, a) => windowTolerance(a),
  gradient: { none: 'second-order gradients of max pooling are not supported yet' },
});

// ---------------------------------------------------------------- avgPoolGrad

const avgPoolGradAttrs = { ...poolAttrs, inputShape: attr.shape };

/**
 * avgPool's input gradient: each window's dy, divided by the number of input elements the window
 * covers, is added to each of them. The input's height and width cannot be read off dy, so the
 * attribute `inputShape` carries them; its batch and channels may be null (taken from dy).
 */
export const avgPoolGrad: CompositeOpDef<typeof avgPoolGradAttrs> = defineComposite({
  name: 'avgPoolGrad',
  kind: 'reduction',
  arity: 1,
  attrs: avgPoolGradAttrs,
  infer([dy], a) {
    const op = 'avgPoolGrad';
    checkPoolAttrs(op, a);
    needFloat4D(op, dy!, 'dy');
    const s = a.inputShape;
    if (s.length !== 4 || s[1] === null || s[2] === null) {
      throw shapeError(`${op}: inputShape ${formatShape(s)} must be [N, H, W, C] with a known H and W`);
    }
    const x: Dim[] = [s[0]!, s[1]!, s[2]!, s[3]!].map((d, i) =>
      i === 1 || i === 2
        ? d
        : unify(d, dy!.shape[i]!, () => {
            throw shapeError(`${op}: dy ${formatType(dy!)} does not match inputShape ${formatShape(s)}`);
          }),
    );
    checkPooled(op, pooledShape(op, x, a), dy!, 'dy', `input ${formatShape(x)}`);
    return [{ dtype: 'float32', shape: x }];
  },
  reference([dy], a) {
    const xShape = [dy!.shape[0]!, a.inputShape[1]!, a.inputShape[2]!, dy!.shape[3]!];
    const out = refTensor('float32', xShape);
    const c = xShape[3]!;
    forEachWindow(xShape, a, (yBase, bases) => {
      for (const base of bases)
        for (let ch = 0; ch < c; ch++) out.data[base + ch]! += dy!.data[yBase + ch]! / bases.length;
    });
    roundTo('float32', out.data);
    return [out];
  },
  cost: poolCost(([dy]) => dy!),
  // Each window's dy / count, to every slot of the window, summed back onto the input.
  decompose: ({ attrs, inputs: [dy] }) => {
    const [, height, width] = attrs.inputShape;
    const shape = [dy!.shape[0]!, height!, width!, dy!.shape[3]!];
    const { p, w } = poolPlan(shape, attrs, 'avgPoolGrad');
    const share = k.reshape(k.div(dy!, windowCounts(dy!, p, w)), [p.n, p.outH, p.outW, 1, p.c]);
    const slots = k.broadcastTo(share, [p.n, p.outH, p.outW, p.kh * p.kw, p.c]);
    return [scatterPatches(k.reshape(slots, [p.n, p.outH * p.outW * p.kh * p.kw, p.c]), p, w)];
  },
  cases(rng) {
    return Array.from({ length: POOL_CASES }, (_, i) => {
      const p = randomPool(rng, i);
      const inputShape = i % 3 === 1 ? [null, p.x[1]!, p.x[2]!, null] : p.x;
      return { inputs: [f32(p.y, p.domain)], attrs: { ...p.attrs, inputShape } };
    });
  },
  tolerance: (_, a) => windowTolerance(a),
  // Linear in dy, and the transpose of avgPool: its own VJP is avgPool of the cotangent.
  gradient: ({ attrs, cotangents: [c] }) => [nn.avgPool(c!, poolOptions(attrs))],
});
