import type { TensorHandle } from '../api/handle.js';
import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { broadcastLike, restoreReducedDims } from '../autodiff/expand.js';
import type { DType } from '../dtype.js';
import { shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { type RefTensor, refTensor, roundTo, unravel } from '../ref-tensor.js';
import {
  type ConcreteShape,
  type Dim,
  formatType,
  normalizeAxes,
  normalizeAxis,
  type Shape,
  type TensorType,
} from '../shape.js';
import { caseShapes } from './case-shapes.js';
import {
  type CompositeOpDef,
  type ConformanceCase,
  composite,
  defineOp,
  type GradientRule,
  streamingCost,
} from './op-def.js';

/** Output shape of reducing `axes` (sorted, normalized) with or without kept dimensions. */
export function reducedShape(shape: Shape, axes: readonly number[], keepDims: boolean): Dim[] {
  const out: Dim[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/**
 * Groups input elements by the output element they reduce into: calls `visit(outIndex, value)` for
 * every input element, in increasing input order (so "first" is well defined for argmax ties).
 */
function forEachReduced(
  x: RefTensor,
  axes: readonly number[],
  visit: (outIndex: number, value: number, coordOnAxis: number) => void,
): void {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  for (let i = 0; i < x.data.length; i++) {
    const coords = unravel(i, x.shape);
    let o = 0;
    for (const d of kept) o = o * x.shape[d]! + coords[d]!;
    visit(o, x.data[i]!, axes.length === 1 ? coords[axes[0]!]! : 0);
  }
}

const reduceAttrs = { axes: attr.axes.default(null), keepDims: attr.bool.default(false) };

function reduceCases(
  rng: Prng,
  dtypes: readonly DType[],
): ConformanceCase<{ axes: number[] | null; keepDims: boolean }>[] {
  const cases: ConformanceCase<{ axes: number[] | null; keepDims: boolean }>[] = [];
  for (const dtype of dtypes) {
    for (const shape of caseShapes(rng, 12)) {
      const axes = rng.bool(0.2) ? null : shape.map((_, i) => i).filter(() => rng.bool(0.5));
      const domain = dtype === 'float32' && rng.bool(0.3) ? 'special' : 'normal';
      cases.push({ inputs: [{ dtype, shape, domain }], attrs: { axes, keepDims: rng.bool() } });
    }
  }
  return cases;
}

interface ReduceSpec {
  readonly dtypes: readonly DType[];
  readonly gradient: GradientRule<ReduceAttrs>;
  readonly init: number;
  readonly step: (acc: number, x: number) => number;
  /** int32 step where it differs (wrap-around). */
  readonly intStep?: (acc: number, x: number) => number;
  readonly finish?: (acc: number, count: number) => number;
}

function reduction(name: string, spec: ReduceSpec) {
  return defineOp({
    name,
    kind: 'reduction',
    arity: 1,
    attrs: reduceAttrs,
    infer([x], { axes, keepDims }) {
      if (!spec.dtypes.includes(x!.dtype)) {
        throw shapeError(
          `${name}: input has type ${formatType(x!)}, but ${name} takes ${spec.dtypes.join(' or ')}`,
        );
      }
      const norm = normalizeAxes(axes, x!.shape.length, name);
      return [{ dtype: x!.dtype, shape: reducedShape(x!.shape, norm, keepDims) }];
    },
    reference([x], { axes, keepDims }) {
      const norm = normalizeAxes(axes, x!.shape.length, name);
      const out = refTensor(x!.dtype, reducedShape(x!.shape, norm, keepDims) as number[]);
      out.data.fill(spec.init);
      const step = x!.dtype === 'int32' && spec.intStep ? spec.intStep : spec.step;
      forEachReduced(x!, norm, (o, v) => {
        out.data[o] = step(out.data[o]!, v);
      });
      if (spec.finish) {
        const count = norm.reduce((n, a) => n * x!.shape[a]!, 1);
        for (let i = 0; i < out.data.length; i++) out.data[i] = spec.finish(out.data[i]!, count);
      }
      return [{ ...out, data: roundTo(out.dtype, out.data) }];
    },
    cost: streamingCost(1),
    cases: (rng) => reduceCases(rng, spec.dtypes),
    gradient: spec.gradient,
    tolerance: ([x], { axes }) =>
      normalizeAxes(axes, x!.shape.length, name).reduce((n, a) => n * x!.shape[a]!, 1),
  });
}

// NaN propagates through max and min, as in numpy.
const nanMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.max(a, b));
const nanMin = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.min(a, b));

/**
 * How many elements each mean averaged: a number when the reduced dimensions are known, else a
 * tensor counted in the graph (a batch of unknown size is the usual case in training).
 */
function reducedCount<T extends TensorHandle>(x: T, axes: readonly number[] | null): number | T {
  const shape = x.shape;
  const n = normalizeAxes(axes, shape.length, 'mean').reduce(
    (p: number | null, a) => (p === null || shape[a] === null ? null : p * shape[a]!),
    1,
  );
  if (n !== null) return n;
  const one = x.context.constant({ dtype: 'float32', shape: [], data: new Float32Array([1]) }) as T;
  return k.sum(broadcastLike(one, x), axes, { keepDims: true });
}

/** Max and min pass the cotangent to the elements equal to the extreme, shared among ties. */
const extremeGradient: GradientRule<ReduceAttrs> = ({
  attrs,
  inputs: [x],
  outputs: [y],
  cotangents: [g],
}) => {
  const yb = restoreReducedDims(y!, x!.shape, attrs.axes, attrs.keepDims);
  const gb = restoreReducedDims(g!, x!.shape, attrs.axes, attrs.keepDims);
  const mask = k.cast(k.equal(x!, yb), 'float32');
  const count = k.sum(mask, attrs.axes, { keepDims: true });
  return [k.mul(mask, k.div(gb, count))];
};

export const sum = reduction('sum', {
  gradient: ({ attrs, inputs: [x], cotangents: [g] }) => [
    broadcastLike(restoreReducedDims(g!, x!.shape, attrs.axes, attrs.keepDims), x!),
  ],
  dtypes: ['float32', 'int32'],
  init: 0,
  step: (a, x) => a + x,
  intStep: (a, x) => (a + x) | 0,
});
export const prod = reduction('prod', {
  // d(prod)/dx_i = prod / x_i: undefined where x_i is 0, as in TensorFlow's fast path.
  gradient: ({ attrs, inputs: [x], outputs: [y], cotangents: [g] }) => [
    k.div(
      k.mul(
        restoreReducedDims(g!, x!.shape, attrs.axes, attrs.keepDims),
        restoreReducedDims(y!, x!.shape, attrs.axes, attrs.keepDims),
      ),
      x!,
    ),
  ],
  dtypes: ['float32', 'int32'],
  init: 1,
  step: (a, x) => a * x,
  intStep: Math.imul,
});
// The sum divided by the count: rounded once more than the reference, well inside its tolerance.
export const mean: CompositeOpDef<typeof reduceAttrs> = composite(
  reduction('mean', {
    gradient: ({ attrs, inputs: [x], cotangents: [g] }) => {
      const gb = restoreReducedDims(g!, x!.shape, attrs.axes, attrs.keepDims);
      const count = reducedCount(x!, attrs.axes);
      return [broadcastLike(typeof count === 'number' ? k.div(gb, count) : k.div(gb, count), x!)];
    },
    dtypes: ['float32'],
    init: 0,
    step: (a, x) => a + x,
    finish: (a, n) => a / n,
  }),
  ({ attrs: { axes, keepDims }, inputs: [x] }) => [
    k.div(k.sum(x!, axes, { keepDims }), reducedCount(x!, axes)),
  ],
);

export const max = reduction('max', {
  dtypes: ['float32', 'int32'],
  init: -Infinity,
  step: nanMax,
  gradient: extremeGradient,
});
export const min = reduction('min', {
  dtypes: ['float32', 'int32'],
  init: Infinity,
  step: nanMin,
  gradient: extremeGradient,
});

function argReduction(name: string, better: (x: number, best: number) => boolean) {
  return defineOp({
    name,
    kind: 'reduction',
    arity: 1,
    attrs: { axis: attr.int.default(-1), keepDims: attr.bool.default(false) },
    infer([x], { axis, keepDims }) {
      if (x!.dtype === 'bool')
        throw shapeError(`${name}: input has type ${formatType(x!)}; ${name} takes numbers`);
      const a = normalizeAxis(axis, x!.shape.length, name);
      if (x!.shape[a] === 0) throw shapeError(`${name}: axis ${axis} of ${formatType(x!)} is empty`);
      return [{ dtype: 'int32', shape: reducedShape(x!.shape, [a], keepDims) }];
    },
    reference([x], { axis, keepDims }) {
      const a = normalizeAxis(axis, x!.shape.length, name);
      const outShape = reducedShape(x!.shape, [a], keepDims) as number[];
      const best = refTensor('float32', outShape);
      const out = refTensor('int32', outShape);
      const seen = new Uint8Array(out.data.length);
      // The first NaN wins (numpy), otherwise the first of equal extremes.
      forEachReduced(x!, [a], (o, v, k) => {
        const b = best.data[o]!;
        if (!seen[o] || (!Number.isNaN(b) && (Number.isNaN(v) || better(v, b)))) {
          seen[o] = 1;
          best.data[o] = v;
          out.data[o] = k;
        }
      });
      return [out];
    },
    gradient: { none: 'returns indices' },
    cost: streamingCost(1),
    cases(rng) {
      const cases: ConformanceCase<{ axis: number; keepDims: boolean }>[] = [];
      for (const dtype of ['float32', 'int32'] as const) {
        for (const shape of caseShapes(rng, 12)) {
          if (shape.length === 0 || shape.includes(0)) continue;
          const axis = rng.int(-shape.length, shape.length - 1);
          // Small integer ranges force ties, which must resolve to the first index.
          const domain =
            dtype === 'int32' ? { range: [-2, 2] as const } : rng.bool(0.3) ? 'special' : 'normal';
          cases.push({ inputs: [{ dtype, shape, domain }], attrs: { axis, keepDims: rng.bool() } });
        }
      }
      return cases;
    },
  });
}

export const argmax = argReduction('argmax', (x, b) => x > b);
export const argmin = argReduction('argmin', (x, b) => x < b);

export type ReduceAttrs = { axes: readonly number[] | null; keepDims: boolean };
export type { ConcreteShape, TensorType };
