import type { KernelFactory } from '@kiln/ir';
import { type HostArray, windowGeometry } from '@kiln/ir';

/**
 * Pooling over NHWC windows. The factory works out, once, the clipped input range of every output
 * row and column (padding never contributes); the loops then walk each window's pixels with the C
 * channels innermost and contiguous, keeping per-channel running values in preallocated scratch.
 */

interface PoolAttrs {
  readonly windowSize: readonly number[];
  readonly strides: readonly number[];
  readonly padding: string;
}

interface Windows {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly oh: number;
  readonly ow: number;
  /** Input rows [yStart[oy], yEnd[oy]) and columns [xStart[ox], xEnd[ox]) of each window. */
  readonly yStart: Int32Array;
  readonly yEnd: Int32Array;
  readonly xStart: Int32Array;
  readonly xEnd: Int32Array;
}

function windows(x: readonly number[], a: PoolAttrs): Windows {
  const [n, h, w, c] = x as [number, number, number, number];
  const [kh, kw] = a.windowSize as [number, number];
  const [sh, sw] = a.strides as [number, number];
  const g = windowGeometry(h, w, kh, kw, { ...a, pads: [], dilations: [1, 1] }, 'pool');
  const clip = (out: number, stride: number, pad: number, k: number, size: number) => {
    const start = new Int32Array(out);
    const end = new Int32Array(out);
    for (let o = 0; o < out; o++) {
      const s = o * stride - pad;
      start[o] = Math.max(0, s);
      end[o] = Math.min(size, s + k);
    }
    return [start, end] as const;
  };
  const [yStart, yEnd] = clip(g.outH, sh, g.padTop, kh, h);
  const [xStart, xEnd] = clip(g.outW, sw, g.padLeft, kw, w);
  return { n, h, w, c, oh: g.outH, ow: g.outW, yStart, yEnd, xStart, xEnd };
}

/** Visits every output pixel with its clipped window: one call per window, pixel loops inline. */
function forEachOutput(
  p: Windows,
  body: (yBase: number, b: number, y0: number, y1: number, x0: number, x1: number) => void,
): void {
  let yBase = 0;
  for (let b = 0; b < p.n; b++)
    for (let oy = 0; oy < p.oh; oy++)
      for (let ox = 0; ox < p.ow; ox++, yBase += p.c)
        body(yBase, b, p.yStart[oy]!, p.yEnd[oy]!, p.xStart[ox]!, p.xEnd[ox]!);
}

export const maxPool: KernelFactory<PoolAttrs> = (node) => {
  const p = windows(node.inputs[0]!.shape, node.attrs);
  const { h, w, c } = p;
  const best = new Float64Array(c);
  return ([xs], [ys]) => {
    const x = xs!;
    const y = ys!;
    forEachOutput(p, (yBase, b, y0, y1, x0, x1) => {
      best.fill(-Infinity);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0, src = ((b * h + iy) * w + x0) * c; ix < x1; ix++, src += c) {
          for (let ci = 0; ci < c; ci++) {
            const v = x[src + ci]!;
            // A NaN sticks: nothing compares greater than it, and it replaces any number.
            if (v > best[ci]! || Number.isNaN(v)) best[ci] = v;
          }
        }
      }
      for (let ci = 0; ci < c; ci++) y[yBase + ci] = best[ci]!;
    });
  };
};

export const avgPool: KernelFactory<PoolAttrs> = (node) => {
  const p = windows(node.inputs[0]!.shape, node.attrs);
  const { h, w, c } = p;
  const sum = new Float64Array(c);
  return ([xs], [ys]) => {
    const x = xs!;
    const y = ys!;
    forEachOutput(p, (yBase, b, y0, y1, x0, x1) => {
      sum.fill(0);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0, src = ((b * h + iy) * w + x0) * c; ix < x1; ix++, src += c) {
          for (let ci = 0; ci < c; ci++) sum[ci] = sum[ci]! + x[src + ci]!;
        }
      }
      const count = (y1 - y0) * (x1 - x0);
      for (let ci = 0; ci < c; ci++) y[yBase + ci] = sum[ci]! / count;
    });
  };
};

/** Routes each window's dy to its first maximal x (row-major; a NaN counts as maximal). */
export const maxPoolGrad: KernelFactory<PoolAttrs> = (node) => {
  const p = windows(node.inputs[0]!.shape, node.attrs);
  const { h, w, c } = p;
  const bestValue = new Float64Array(c);
  const bestAt = new Int32Array(c);
  const acc = new Float64Array(p.n * h * w * c);
  return ([xs, , dys], [dxs]) => {
    const x = xs!;
    const dy = dys!;
    acc.fill(0);
    forEachOutput(p, (yBase, b, y0, y1, x0, x1) => {
      bestAt.fill(-1);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0, src = ((b * h + iy) * w + x0) * c; ix < x1; ix++, src += c) {
          for (let ci = 0; ci < c; ci++) {
            const v = x[src + ci]!;
            const m = bestValue[ci]!;
            if (bestAt[ci]! < 0 || (!Number.isNaN(m) && (v > m || Number.isNaN(v)))) {
              bestValue[ci] = v;
              bestAt[ci] = src;
            }
          }
        }
      }
      for (let ci = 0; ci < c; ci++) {
        const at = bestAt[ci]!;
        if (at >= 0) acc[at + ci] = acc[at + ci]! + dy[yBase + ci]!;
      }
    });
    copyOut(acc, dxs!);
  };
};

/** Spreads each window's dy evenly over the input elements it covers. */
export const avgPoolGrad: KernelFactory<PoolAttrs> = (node) => {
  const p = windows(node.outputs[0]!.shape, node.attrs);
  const { h, w, c } = p;
  const acc = new Float64Array(p.n * h * w * c);
  return ([dys], [dxs]) => {
    const dy = dys!;
    acc.fill(0);
    forEachOutput(p, (yBase, b, y0, y1, x0, x1) => {
      const count = (y1 - y0) * (x1 - x0);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0, dst = ((b * h + iy) * w + x0) * c; ix < x1; ix++, dst += c) {
          for (let ci = 0; ci < c; ci++) acc[dst + ci] = acc[dst + ci]! + dy[yBase + ci]! / count;
        }
      }
    });
    copyOut(acc, dxs!);
  };
};

function copyOut(acc: Float64Array, out: HostArray): void {
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]!;
}
