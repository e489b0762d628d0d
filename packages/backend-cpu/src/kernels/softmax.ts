import type { KernelFactory } from '@kiln/ir';
import { normalizeAxis } from '@kiln/ir';

/**
 * Numerically stable softmax and logSoftmax along one axis: subtract the lane's max before exp,
 * so large logits cannot overflow. Lanes are (outer, n, inner) as in the reductions.
 */
function softmaxKernel(log: boolean): KernelFactory<{ axis: number }> {
  return (node) => {
    const shape = node.inputs[0]!.shape;
    const axis = normalizeAxis(node.attrs.axis, shape.length, 'softmax');
    const n = shape[axis]!;
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    return ([x], [out]) => {
      const xs = x!;
      const ys = out!;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * n * inner + i;
          let m = -Infinity;
          for (let j = 0, p = base; j < n; j++, p += inner) {
            const v = xs[p]!;
            if (v > m || Number.isNaN(v)) m = v;
          }
          let s = 0;
          for (let j = 0, p = base; j < n; j++, p += inner) s += Math.exp(xs[p]! - m);
          if (log) {
            const ls = Math.log(s);
            for (let j = 0, p = base; j < n; j++, p += inner) ys[p] = xs[p]! - m - ls;
          } else {
            const inv = 1 / s;
            for (let j = 0, p = base; j < n; j++, p += inner) ys[p] = Math.exp(xs[p]! - m) * inv;
          }
        }
      }
    };
  };
}

export const softmax = softmaxKernel(false);
export const logSoftmax = softmaxKernel(true);
