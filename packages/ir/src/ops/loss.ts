import type { TensorHandle } from '../api/handle.js';
import * as k from '../api/ops.js';
import { KilnError, shapeError } from '../errors.js';
import { refTensor, roundTo } from '../ref-tensor.js';
import { type Dim, formatShape, formatType } from '../shape.js';
import { caseShapes } from './case-shapes.js';
import { type CompositeOpDef, defineComposite, streamingCost } from './op-def.js';

/**
 * Softmax cross-entropy along the last axis, fused so that it is stable for any logits: with
 * m = max(logits) and lse = m + log(sum(exp(logits - m))), the loss of a row is
 * sum_k labels_k * (lse - logits_k), each term computed as labels_k * ((m - logits_k) + log s), so
 * nothing overflows and nothing cancels catastrophically. For labels that sum to one this is
 * lse - sum(labels * logits).
 */

/** Visits each row (the last axis): `row(base, k)`, elements base .. base + k - 1. */
function forEachRow(shape: readonly number[], row: (index: number, base: number, k: number) => void): void {
  const kk = shape[shape.length - 1]!;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  for (let r = 0; r < rows; r++) row(r, r * kk, kk);
}

/** max and log(sum(exp(x - max))) of one row; NaN anywhere makes the max NaN. */
function rowStats(x: Float64Array, base: number, kk: number): { m: number; logS: number } {
  let m = -Infinity;
  for (let j = 0; j < kk; j++) m = Math.max(m, x[base + j]!);
  let s = 0;
  for (let j = 0; j < kk; j++) s += Math.exp(x[base + j]! - m);
  return { m, logS: Math.log(s) };
}

/** [..., K] to [..., 1]: the per-row cotangent ready to broadcast over K. */
function perRow<T extends TensorHandle>(g: T, op: string): T {
  const target = [...g.shape, 1];
  if (target.filter((d) => d === null).length > 1) {
    throw new KilnError(
      'unsupported',
      `${op} gradient: cannot reshape a cotangent of shape ${formatShape(g.shape)} with more than one unknown dimension`,
    );
  }
  return k.reshape(
    g,
    target.map((d) => d ?? -1),
  );
}

// ---------------------------------------------------------------- softmaxCrossEntropy

const noAttrs = {};

export const softmaxCrossEntropy: CompositeOpDef<typeof noAttrs> = defineComposite({
  name: 'softmaxCrossEntropy',
  kind: 'normalization',
  arity: 2,
  attrs: noAttrs,
  infer([logits, labels]) {
    const both = `logits ${formatType(logits!)} and labels ${formatType(labels!)}`;
    if (logits!.dtype !== 'float32' || labels!.dtype !== 'float32')
      throw shapeError(`softmaxCrossEntropy: ${both} must both be float32`);
    if (logits!.shape.length < 1 || logits!.shape.length !== labels!.shape.length)
      throw shapeError(`softmaxCrossEntropy: ${both} need the same rank >= 1`);
    const shape: Dim[] = logits!.shape.map((d, i) => {
      const e = labels!.shape[i]!;
      if (d !== null && e !== null && d !== e)
        throw shapeError(`softmaxCrossEntropy: shapes differ for ${both}`);
      return d ?? e;
    });
    return [{ dtype: 'float32', shape: shape.slice(0, -1) }];
  },
  reference([logits, labels]) {
    const out = refTensor('float32', logits!.shape.slice(0, -1));
    const x = logits!.data;
    const l = labels!.data;
    forEachRow(logits!.shape, (r, base, kk) => {
      const { m, logS } = rowStats(x, base, kk);
      let loss = 0;
      for (let j = 0; j < kk; j++) loss += l[base + j]! * (m - x[base + j]! + logS);
      out.data[r] = loss;
    });
    roundTo('float32', out.data);
    return [out];
  },
  cost: streamingCost(16),
  cases(rng) {
    return caseShapes(rng, 16)
      .filter((s) => s.length > 0)
      .map((shape, i) => ({
        inputs: [
          {
            dtype: 'float32' as const,
            shape,
            domain: i % 4 === 3 ? ('special' as const) : ('normal' as const),
          },
          {
            dtype: 'float32' as const,
            shape,
            domain: i % 2 === 0 ? ('positive' as const) : ('normal' as const),
          },
        ],
        attrs: {},
      }));
  },
  // Each term is within a few roundings; the sum over K adds one per term.
  tolerance: ([logits]) => 4 + (logits!.shape[logits!.shape.length - 1] ?? 1),
  // d/dlogits = g * (softmax * sum(labels) - labels), which is g * (softmax - labels) for labels
  // that sum to one; d/dlabels = g * -logSoftmax(logits).
  gradient: ({ inputs: [logits, labels], cotangents: [g] }) => {
    const gr = perRow(g!, 'softmaxCrossEntropy');
    const total = k.sum(labels!, -1, { keepDims: true });
    const dlogits = k.mul(gr, k.sub(k.mul(k.softmax(logits!), total), labels!));
    const dlabels = k.mul(gr, k.neg(k.logSoftmax(logits!)));
    return [dlogits, dlabels];
  },
  // sum(labels * ((m - logits) + log s)), as the reference computes it.
  decompose: ({ inputs: [logits, labels] }) => {
    const { m, logS } = rowTerms(logits!, true);
    return [k.sum(k.mul(labels!, k.add(k.sub(m, logits!), logS)), -1)];
  },
});

// ---------------------------------------------------------------- sparseSoftmaxCrossEntropy

/**
 * Cross-entropy against integer class indices: loss = lse - logits[label]. A label outside [0, K)
 * gives NaN (a device cannot throw mid-kernel); its gradient is then softmax(logits) alone.
 */
export const sparseSoftmaxCrossEntropy: CompositeOpDef<typeof noAttrs> = defineComposite({
  name: 'sparseSoftmaxCrossEntropy',
  kind: 'normalization',
  arity: 2,
  attrs: noAttrs,
  infer([logits, labels]) {
    const both = `logits ${formatType(logits!)} and labels ${formatType(labels!)}`;
    const op = 'sparseSoftmaxCrossEntropy';
    if (logits!.dtype !== 'float32' || labels!.dtype !== 'int32')
      throw shapeError(`${op}: ${both} must be float32 and int32`);
    if (logits!.shape.length !== labels!.shape.length + 1)
      throw shapeError(`${op}: ${both}: labels need the shape of logits without its last axis`);
    const shape = labels!.shape.map((e, i) => {
      const d = logits!.shape[i]!;
      if (d !== null && e !== null && d !== e) throw shapeError(`${op}: shapes differ for ${both}`);
      return d ?? e;
    });
    return [{ dtype: 'float32', shape }];
  },
  reference([logits, labels]) {
    const out = refTensor('float32', labels!.shape);
    const x = logits!.data;
    forEachRow(logits!.shape, (r, base, kk) => {
      const { m, logS } = rowStats(x, base, kk);
      const label = labels!.data[r]!;
      out.data[r] = label >= 0 && label < kk ? m - x[base + label]! + logS : Number.NaN;
    });
    roundTo('float32', out.data);
    return [out];
  },
  cost: streamingCost(16),
  cases(rng) {
    return caseShapes(rng, 16)
      .filter((s) => s.length > 0)
      .map((shape, i) => {
        const kk = shape[shape.length - 1]!;
        // Now and then a label out of range (including for K = 0), which must give NaN.
        const range: [number, number] = i % 5 === 4 ? [-1, kk] : [0, Math.max(kk - 1, 0)];
        return {
          inputs: [
            {
              dtype: 'float32' as const,
              shape,
              domain: i % 4 === 3 ? ('special' as const) : ('normal' as const),
            },
            { dtype: 'int32' as const, shape: shape.slice(0, -1), domain: { range } },
          ],
          attrs: {},
        };
      });
  },
  tolerance: ([logits]) => 4 + (logits!.shape[logits!.shape.length - 1] ?? 1),
  gradient: ({ inputs: [logits, labels], cotangents: [g] }) => {
    const kk = logits!.shape[logits!.shape.length - 1];
    if (kk === null || kk === undefined) {
      throw new KilnError(
        'unsupported',
        `sparseSoftmaxCrossEntropy gradient needs a known number of classes; got logits ${formatShape(logits!.shape)}`,
      );
    }
    const onehot = k.oneHot(labels!, kk, { dtype: 'float32' });
    return [k.mul(perRow(g!, 'sparseSoftmaxCrossEntropy'), k.sub(k.softmax(logits!), onehot)), null];
  },
  // (m - logits[label]) + log s, NaN for a label outside [0, K). The label's logit is picked with
  // where, not a one-hot product: 0 * inf elsewhere in the row would make it NaN.
  decompose: ({ inputs: [logits, labels] }) => {
    const kk = logits!.shape[logits!.shape.length - 1];
    if (kk === null || kk === undefined)
      throw new KilnError(
        'unsupported',
        `sparseSoftmaxCrossEntropy: expanding it needs a known number of classes`,
      );
    const picked = k.sum(
      k.where(k.oneHot(labels!, kk, { dtype: 'bool', onValue: 1, offValue: 0 }), logits!, 0),
      -1,
    );
    const { m, logS } = rowTerms(logits!, false);
    const inRange = k.logicalAnd(k.less(-1, labels!), k.less(labels!, kk));
    return [k.where(inRange, k.add(k.sub(m, picked), logS), Number.NaN)];
  },
});

/** A row's max and log(sum(exp(x - max))), along the last axis. */
function rowTerms<T extends TensorHandle>(x: T, keepDims: boolean): { m: T; logS: T } {
  const m = k.max(x, -1, { keepDims: true });
  const logS = k.log(k.sum(k.exp(k.sub(x, m)), -1, { keepDims }));
  return { m: keepDims ? m : k.max(x, -1), logS };
}
