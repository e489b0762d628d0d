import type { KernelFactory } from '@kiln/ir';
import { type HostArray, type WindowAttrs, windowGeometry } from '@kiln/ir';
import type { FloatGemm, GemmOperand } from './matmul.js';

/**
 * Convolution as GEMM. im2col lays every output pixel's receptive field out as one row of a
 * [N*OH*OW, KH*KW*C] matrix (zeros where the window hangs over the padding), so that the forward
 * pass is that matrix times the filter viewed as [KH*KW*C, F] (its HWIO layout already is), run by
 * the blocked matmul kernel. The two gradients are the same product transposed: dx scatters
 * dy · filterᵀ back through the windows (col2im), dfilter is im2col(x)ᵀ · dy. The im2col matrix is
 * built a block of rows at a time, so its scratch stays bounded whatever the image size.
 */

/** Elements of im2col scratch per block (floats), for the forward pass and the input gradient. */
const BLOCK = 1 << 16;
/** The filter gradient reduces over rows; bigger blocks mean fewer partial sums to add up. */
const FILTER_BLOCK = 1 << 20;

interface Plan {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly kh: number;
  readonly kw: number;
  readonly f: number;
  readonly oh: number;
  readonly ow: number;
  readonly sh: number;
  readonly sw: number;
  readonly dh: number;
  readonly dw: number;
  readonly top: number;
  readonly left: number;
  /** Columns of the im2col matrix: KH * KW * C. */
  readonly kk: number;
  /** Rows of the im2col matrix: N * OH * OW. */
  readonly rows: number;
}

function plan(x: readonly number[], filter: readonly number[], attrs: WindowAttrs): Plan {
  const [n, h, w, c] = x as [number, number, number, number];
  const [kh, kw, , f] = filter as [number, number, number, number];
  const g = windowGeometry(h, w, kh, kw, attrs, 'conv2d');
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  return {
    n,
    h,
    w,
    c,
    kh,
    kw,
    f,
    oh: g.outH,
    ow: g.outW,
    sh,
    sw,
    dh,
    dw,
    top: g.padTop,
    left: g.padLeft,
    kk: kh * kw * c,
    rows: n * g.outH * g.outW,
  };
}

const blockRows = (p: Plan, budget: number) =>
  Math.max(1, Math.min(p.rows, Math.floor(budget / Math.max(p.kk, 1))));

/** A 1x1 window at stride 1 without padding: x itself is the im2col matrix. */
const isPointwise = (p: Plan) =>
  p.kh === 1 && p.kw === 1 && p.sh === 1 && p.sw === 1 && p.oh === p.h && p.ow === p.w;

/**
 * Walks rows [r0, r1) of the im2col matrix: `copy(colIndex, xIndex)` for each of the window's pixels
 * inside the input (C consecutive elements each), `zero(colIndex, count)` for stretches in padding.
 */
function walk(
  p: Plan,
  r0: number,
  r1: number,
  copy: (col: number, src: number) => void,
  zero: (col: number, count: number) => void,
): void {
  const { h, w, c, kh, kw } = p;
  let dst = 0;
  for (let r = r0; r < r1; r++) {
    const ox = r % p.ow;
    const t = (r - ox) / p.ow;
    const oy = t % p.oh;
    const b = (t - oy) / p.oh;
    const y0 = oy * p.sh - p.top;
    const x0 = ox * p.sw - p.left;
    for (let ky = 0; ky < kh; ky++) {
      const iy = y0 + ky * p.dh;
      if (iy < 0 || iy >= h) {
        zero(dst, kw * c);
        dst += kw * c;
        continue;
      }
      const rowBase = (b * h + iy) * w;
      for (let kx = 0; kx < kw; kx++, dst += c) {
        const ix = x0 + kx * p.dw;
        if (ix < 0 || ix >= w) zero(dst, c);
        else copy(dst, (rowBase + ix) * c);
      }
    }
  }
}

/** Rows [r0, r1) of im2col(x) into `col`. */
function im2col(p: Plan, x: HostArray, r0: number, r1: number, col: Float32Array): void {
  const c = p.c;
  walk(
    p,
    r0,
    r1,
    (dst, src) => {
      for (let ci = 0; ci < c; ci++) col[dst + ci] = x[src + ci]!;
    },
    (dst, count) => {
      col.fill(0, dst, dst + count);
    },
  );
}

/** The transpose of im2col: adds rows [r0, r1) of `col` into the image `acc`. */
function col2im(p: Plan, col: Float32Array, r0: number, r1: number, acc: Float64Array): void {
  const c = p.c;
  walk(
    p,
    r0,
    r1,
    (dst, src) => {
      for (let ci = 0; ci < c; ci++) acc[src + ci] = acc[src + ci]! + col[dst + ci]!;
    },
    () => {},
  );
}

/** The convolution kernels on a float GEMM (the TypeScript one, or the SIMD one). */
export function convolutionsOn(gemm: FloatGemm) {
  return {
    conv2d: conv2d(gemm),
    conv2dBackpropInput: conv2dBackpropInput(gemm),
    conv2dBackpropFilter: conv2dBackpropFilter(gemm),
  };
}

const conv2d =
  (gemm: FloatGemm): KernelFactory<WindowAttrs> =>
  (node) => {
    const p = plan(node.inputs[0]!.shape, node.inputs[1]!.shape, node.attrs);
    const { f, kk, rows } = p;
    const pointwise = isPointwise(p);
    const block = pointwise ? rows : blockRows(p, BLOCK);
    const col = new Float32Array(pointwise ? 0 : block * kk);
    const scratch = gemm.scratch(f, kk);
    return ([x, filter], [y]) => {
      const a: GemmOperand = pointwise
        ? { data: x!, offset: 0, rowStride: kk, colStride: 1 }
        : { data: col, offset: 0, rowStride: kk, colStride: 1 };
      const b: GemmOperand = { data: filter!, offset: 0, rowStride: f, colStride: 1 };
      for (let r0 = 0; r0 < rows; r0 += block) {
        const r1 = Math.min(rows, r0 + block);
        if (pointwise) a.offset = r0 * kk;
        else im2col(p, x!, r0, r1, col);
        gemm.run(r1 - r0, f, kk, a, b, y!, r0 * f, scratch);
      }
    };
  };

/** dx = col2im(dy · filterᵀ), accumulated in float64. */
const conv2dBackpropInput =
  (gemm: FloatGemm): KernelFactory<WindowAttrs> =>
  (node) => {
    const p = plan(node.outputs[0]!.shape, node.inputs[1]!.shape, node.attrs);
    const { f, kk, rows } = p;
    const block = blockRows(p, BLOCK);
    const dcol = new Float32Array(block * kk);
    const acc = new Float64Array(p.n * p.h * p.w * p.c);
    const scratch = gemm.scratch(kk, f);
    return ([dy, filter], [dx]) => {
      acc.fill(0);
      const a: GemmOperand = { data: dy!, offset: 0, rowStride: f, colStride: 1 };
      // filterᵀ: element (fo, j) of the [F, KH*KW*C] matrix is filter[j * F + fo].
      const b: GemmOperand = { data: filter!, offset: 0, rowStride: 1, colStride: f };
      for (let r0 = 0; r0 < rows; r0 += block) {
        const r1 = Math.min(rows, r0 + block);
        a.offset = r0 * f;
        gemm.run(r1 - r0, kk, f, a, b, dcol, 0, scratch);
        col2im(p, dcol, r0, r1, acc);
      }
      const out = dx!;
      for (let i = 0; i < acc.length; i++) out[i] = acc[i]!;
    };
  };

/** dfilter = im2col(x)ᵀ · dy, summed over blocks of rows. */
const conv2dBackpropFilter =
  (gemm: FloatGemm): KernelFactory<WindowAttrs> =>
  (node) => {
    const p = plan(node.inputs[0]!.shape, node.outputs[0]!.shape, node.attrs);
    const { f, kk, rows } = p;
    const block = blockRows(p, FILTER_BLOCK);
    const blocks = Math.ceil(rows / block);
    const col = new Float32Array(block * kk);
    const scratch = gemm.scratch(f, block);
    // One block writes the result directly; several add float32 partial products in float64.
    const partial = new Float32Array(blocks > 1 ? kk * f : 0);
    const acc = new Float64Array(blocks > 1 ? kk * f : 0);
    return ([x, dy], [dw]) => {
      const out = dw!;
      if (rows === 0) {
        out.fill(0);
        return;
      }
      // im2col(x)ᵀ: element (j, r) of the [KH*KW*C, rows] matrix is col[r * kk + j].
      const a: GemmOperand = { data: col, offset: 0, rowStride: 1, colStride: kk };
      const b: GemmOperand = { data: dy!, offset: 0, rowStride: f, colStride: 1 };
      acc.fill(0);
      for (let r0 = 0; r0 < rows; r0 += block) {
        const r1 = Math.min(rows, r0 + block);
        im2col(p, x!, r0, r1, col);
        b.offset = r0 * f;
        gemm.run(kk, f, r1 - r0, a, b, blocks > 1 ? partial : out, 0, scratch);
        if (blocks > 1) for (let i = 0; i < partial.length; i++) acc[i] = acc[i]! + partial[i]!;
      }
      if (blocks > 1) for (let i = 0; i < acc.length; i++) out[i] = acc[i]!;
    };
  };
