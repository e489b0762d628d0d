import type { TensorHandle } from '../api/handle.js';
import * as k from '../api/ops.js';
import { KilnError } from '../errors.js';
import { formatShape } from '../shape.js';
import { type WindowAttrs, windowGeometry } from './conv.js';

/**
 * Sliding windows built from primitives, for the decompositions of convolution and pooling: a
 * window's elements are gathered from the padded input by a constant index table (im2col as a
 * gather), and written back by gathering, for each input element, the window slots that read it
 * and summing them (col2im as a gather and a sum, so no scatter primitive is needed). Both
 * materialize kh * kw copies of the input, as an im2col kernel does; devices that care claim the
 * windowed ops as fast paths.
 */
export interface WindowPlan {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly kh: number;
  readonly kw: number;
  readonly outH: number;
  readonly outW: number;
  /** [[top, bottom], [left, right]] around the input, so every window lies inside. */
  readonly pads: readonly [readonly [number, number], readonly [number, number]];
  readonly paddedW: number;
  readonly paddedH: number;
}

function known(shape: readonly (number | null)[], op: string): number[] {
  if (shape.some((d) => d === null))
    throw new KilnError(
      'unsupported',
      `expanding ${op} needs a known input shape; got ${formatShape(shape)}`,
    );
  return shape as number[];
}

/** Where the windows of a kh x kw filter lie over an NHWC input of `shape`. */
export function windowPlan(
  shape: readonly (number | null)[],
  kh: number,
  kw: number,
  attrs: WindowAttrs,
  op: string,
): WindowPlan {
  const [n, h, w, c] = known(shape, op) as [number, number, number, number];
  const g = windowGeometry(h, w, kh, kw, attrs, op);
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  // Enough after the input that the last window fits; a window that stops short leaves a tail.
  const bottom = Math.max(0, (g.outH - 1) * sh + (kh - 1) * dh + 1 - h - g.padTop);
  const right = Math.max(0, (g.outW - 1) * sw + (kw - 1) * dw + 1 - w - g.padLeft);
  return {
    n,
    h,
    w,
    c,
    kh,
    kw,
    outH: g.outH,
    outW: g.outW,
    pads: [
      [g.padTop, bottom],
      [g.padLeft, right],
    ],
    paddedH: h + g.padTop + bottom,
    paddedW: w + g.padLeft + right,
  };
}

/** Visits each window slot: its index in [outH, outW, kh, kw] order and the padded cell it reads. */
function forEachSlot(p: WindowPlan, attrs: WindowAttrs, visit: (slot: number, cell: number) => void): void {
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  let slot = 0;
  for (let oy = 0; oy < p.outH; oy++)
    for (let ox = 0; ox < p.outW; ox++)
      for (let i = 0; i < p.kh; i++)
        for (let j = 0; j < p.kw; j++) visit(slot++, (oy * sh + i * dh) * p.paddedW + ox * sw + j * dw);
}

const indexConstant = <T extends TensorHandle>(like: T, data: Int32Array): T =>
  like.context.constant({ dtype: 'int32', shape: [data.length], data }) as T;

/** The windows of `x` (NHWC), padded with `value`: [n, outH * outW * kh * kw, c]. */
export function extractPatches<T extends TensorHandle>(
  x: T,
  p: WindowPlan,
  attrs: WindowAttrs,
  value: number,
): T {
  const index = new Int32Array(p.outH * p.outW * p.kh * p.kw);
  forEachSlot(p, attrs, (slot, cell) => {
    index[slot] = cell;
  });
  const padded = k.pad(x, [[0, 0], p.pads[0], p.pads[1], [0, 0]], value);
  const cells = k.reshape(padded, [p.n, p.paddedH * p.paddedW, p.c]);
  return k.gather(cells, indexConstant(x, index), 1);
}

/**
 * The transpose of extractPatches: each input element gets the sum of the window slots that read
 * it. `cols` is [n, outH * outW * kh * kw, c]; the result is [n, h, w, c].
 */
export function scatterPatches<T extends TensorHandle>(cols: T, p: WindowPlan, attrs: WindowAttrs): T {
  const slots = p.outH * p.outW * p.kh * p.kw;
  const cells = p.paddedH * p.paddedW;
  // For each cell, up to kh * kw slots read it (one per window offset); the rest point at a zero
  // row appended after the slots.
  const readers: number[][] = Array.from({ length: cells }, () => []);
  forEachSlot(p, attrs, (slot, cell) => readers[cell]!.push(slot));
  const fanIn = Math.max(1, ...readers.map((r) => r.length));
  const index = new Int32Array(cells * fanIn).fill(slots);
  readers.forEach((r, cell) => index.set(r, cell * fanIn));
  const withZero = k.pad(
    cols,
    [
      [0, 0],
      [0, 1],
      [0, 0],
    ],
    0,
  );
  const gathered = k.gather(withZero, indexConstant(cols, index), 1);
  const summed = k.sum(k.reshape(gathered, [p.n, cells, fanIn, p.c]), [2]);
  const grid = k.reshape(summed, [p.n, p.paddedH, p.paddedW, p.c]);
  return k.slice(grid, [0, p.pads[0][0], p.pads[1][0], 0], [p.n, p.h, p.w, p.c]);
}

/** How many input elements (not padding) each window covers: [1, outH, outW, 1]. */
export function windowCounts<T extends TensorHandle>(like: T, p: WindowPlan, attrs: WindowAttrs): T {
  const counts = new Float32Array(p.outH * p.outW);
  const [top, left] = [p.pads[0][0], p.pads[1][0]];
  forEachSlot(p, attrs, (slot, cell) => {
    const y = Math.floor(cell / p.paddedW) - top;
    const x = (cell % p.paddedW) - left;
    if (y >= 0 && y < p.h && x >= 0 && x < p.w) counts[Math.floor(slot / (p.kh * p.kw))]! += 1;
  });
  return like.context.constant({ dtype: 'float32', shape: [1, p.outH, p.outW, 1], data: counts }) as T;
}
