import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { roundFloat32 } from '../dtype.js';
import { shapeError } from '../errors.js';
import { type RefTensor, refTensor } from '../ref-tensor.js';
import { formatType, normalizeAxis } from '../shape.js';
import { caseShapes } from './case-shapes.js';
import { type CompositeOpDef, defineComposite, streamingCost } from './op-def.js';

/**
 * Visits each 1-D lane along `axis`: `lane(base, stride, n)` where element j of the lane is at
 * base + j * stride.
 */
export function forEachLane(
  shape: readonly number[],
  axis: number,
  lane: (base: number, stride: number, n: number) => void,
) {
  const n = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) lane(o * n * inner + i, inner, n);
}

function stable(x: RefTensor, axis: number, log: boolean): RefTensor {
  const a = normalizeAxis(axis, x.shape.length, log ? 'logSoftmax' : 'softmax');
  const out = refTensor(x.dtype, x.shape);
  forEachLane(x.shape as number[], a, (base, stride, n) => {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x.data[base + j * stride]!);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(x.data[base + j * stride]! - m);
    for (let j = 0; j < n; j++) {
      const z = x.data[base + j * stride]! - m;
      out.data[base + j * stride] = roundFloat32(log ? z - Math.log(s) : Math.exp(z) / s);
    }
  });
  return out;
}

const softmaxAttrs = { axis: attr.int.default(-1) };

// The return type is spelled out: the gradient uses the functional API, whose types depend on the
// op table this definition is part of.
function softmaxOp(name: 'softmax' | 'logSoftmax'): CompositeOpDef<typeof softmaxAttrs> {
  const log = name === 'logSoftmax';
  return defineComposite({
    name,
    kind: 'normalization',
    arity: 1,
    attrs: softmaxAttrs,
    infer([x], { axis }) {
      if (x!.dtype !== 'float32') throw shapeError(`${name}: input has type ${formatType(x!)}; need float32`);
      normalizeAxis(axis, x!.shape.length, name);
      return [{ dtype: x!.dtype, shape: x!.shape }];
    },
    reference: ([x], { axis }) => [stable(x!, axis, log)],
    cost: streamingCost(12),
    // softmax: y * (g - sum(g * y)); logSoftmax: g - exp(y) * sum(g), both along the axis.
    gradient: ({ attrs: { axis }, outputs: [y], cotangents: [g] }) =>
      log
        ? [k.sub(g!, k.mul(k.exp(y!), k.sum(g!, axis, { keepDims: true })))]
        : [k.mul(y!, k.sub(g!, k.sum(k.mul(g!, y!), axis, { keepDims: true })))],
    // z = x - max(x); softmax = exp(z) / sum(exp(z)), logSoftmax = z - log(sum(exp(z))).
    decompose: ({ attrs: { axis }, inputs: [x] }) => {
      const z = k.sub(x!, k.max(x!, axis, { keepDims: true }));
      const e = k.exp(z);
      const total = k.sum(e, axis, { keepDims: true });
      return [log ? k.sub(z, k.log(total)) : k.div(e, total)];
    },
    cases(rng) {
      return caseShapes(rng, 14)
        .filter((s) => s.length > 0)
        .map((shape) => ({
          inputs: [
            {
              dtype: 'float32' as const,
              shape,
              domain: rng.bool(0.25) ? ('special' as const) : ('normal' as const),
            },
          ],
          attrs: { axis: rng.int(-shape.length, shape.length - 1) },
        }));
    },
    tolerance: ([x], { axis }) => 2 + (x!.shape[normalizeAxis(axis, x!.shape.length, name)] ?? 1),
  });
}

export const softmax = softmaxOp('softmax');
export const logSoftmax = softmaxOp('logSoftmax');
