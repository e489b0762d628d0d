import type { HostArray, KernelFactory } from '@kiln/ir';

/**
 * Softmax cross-entropy over the last axis, one pass for the max and one for the sum of
 * exponentials per row, then the loss in the same form as the reference:
 * sum_k labels_k * ((m - x_k) + log s). Nothing is allocated per row.
 */

/** The row's max (NaN if it holds one) and log(sum(exp(x - max))). */
function rowMax(x: HostArray, base: number, k: number): number {
  let m = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = x[base + j]!;
    if (v > m || Number.isNaN(v)) m = v;
  }
  return m;
}

function rowLogSum(x: HostArray, base: number, k: number, m: number): number {
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(x[base + j]! - m);
  return Math.log(s);
}

const rowsOf = (shape: readonly number[]) => shape.slice(0, -1).reduce((a, b) => a * b, 1);

export const softmaxCrossEntropy: KernelFactory<Record<string, never>> = (node) => {
  const shape = node.inputs[0]!.shape;
  const k = shape[shape.length - 1]!;
  const rows = rowsOf(shape);
  return ([xs, ls], [ys]) => {
    const x = xs!;
    const l = ls!;
    const y = ys!;
    for (let r = 0, base = 0; r < rows; r++, base += k) {
      const m = rowMax(x, base, k);
      const logS = rowLogSum(x, base, k, m);
      let loss = 0;
      for (let j = 0; j < k; j++) loss += l[base + j]! * (m - x[base + j]! + logS);
      y[r] = loss;
    }
  };
};

export const sparseSoftmaxCrossEntropy: KernelFactory<Record<string, never>> = (node) => {
  const shape = node.inputs[0]!.shape;
  const k = shape[shape.length - 1]!;
  const rows = rowsOf(shape);
  return ([xs, labels], [ys]) => {
    const x = xs!;
    const y = ys!;
    for (let r = 0, base = 0; r < rows; r++, base += k) {
      const label = labels![r]!;
      if (label < 0 || label >= k) {
        y[r] = Number.NaN;
        continue;
      }
      const m = rowMax(x, base, k);
      y[r] = m - x[base + label]! + rowLogSum(x, base, k, m);
    }
  };
};
