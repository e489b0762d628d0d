import * as nn from '../api/nn.js';
import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { invalidArgument, KilnError, shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { refTensor, roundTo } from '../ref-tensor.js';
import {
  type ConcreteShape,
  type Dim,
  formatShape,
  formatType,
  type Shape,
  type TensorType,
} from '../shape.js';
import { type CompositeOpDef, type ConformanceInput, defineComposite, elementBytes } from './op-def.js';
import { extractPatches, scatterPatches, windowPlan } from './windows.js';

/**
 * 2-D convolution in NHWC with HWIO filters ([KH, KW, C, F]), as in TensorFlow, and the two ops its
 * gradient needs. Padding follows TensorFlow: 'valid' (none), 'same' (output ceil(size / stride),
 * the total padding split with the smaller half before), or explicit [[top, bottom], [left, right]].
 */

// ---------------------------------------------------------------- window geometry (shared with pool.ts)

export type PaddingMode = 'valid' | 'same' | 'explicit';
export type Pads = readonly (readonly [number, number])[];

/** The attributes that place a sliding window over the two spatial axes. */
export interface WindowAttrs {
  readonly strides: readonly number[];
  readonly padding: string;
  /** [[top, bottom], [left, right]] when padding is 'explicit', else empty. */
  readonly pads: Pads;
  readonly dilations: readonly number[];
}

/** Where a window lies along one spatial axis: the output size and the padding before the input. */
export interface WindowAxis {
  readonly out: number;
  readonly before: number;
}

/**
 * Output size and leading padding along one axis, or null when the window does not fit even once
 * (valid or explicit padding with an input smaller than the dilated window).
 */
export function windowAxis(
  size: number,
  k: number,
  stride: number,
  dilation: number,
  padding: string,
  pad: readonly [number, number] | undefined,
): WindowAxis | null {
  const extent = (k - 1) * dilation + 1;
  if (padding === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + extent - size, 0);
    return { out, before: Math.floor(total / 2) };
  }
  const [before, after] = padding === 'explicit' ? pad! : [0, 0];
  const padded = size + before + after;
  if (padded < extent) return null;
  return { out: Math.floor((padded - extent) / stride) + 1, before };
}

/** Both spatial axes of a window over an NHWC input of known height and width. */
export interface Geometry2d {
  readonly outH: number;
  readonly outW: number;
  readonly padTop: number;
  readonly padLeft: number;
}

/** The geometry of a window of `kh` x `kw` over an `h` x `w` input; throws if it does not fit. */
export function windowGeometry(
  h: number,
  w: number,
  kh: number,
  kw: number,
  attrs: WindowAttrs,
  where: string,
): Geometry2d {
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  const y = windowAxis(h, kh, sh, dh, attrs.padding, attrs.pads[0]);
  const x = windowAxis(w, kw, sw, dw, attrs.padding, attrs.pads[1]);
  if (!y || !x)
    throw shapeError(`${where}: the window does not fit the input with padding '${attrs.padding}'`);
  return { outH: y.out, outW: x.out, padTop: y.before, padLeft: x.before };
}

/** Output size along one axis where the input or window size may be unknown. */
function outDim(size: Dim, k: Dim, stride: number, dilation: number, attrs: WindowAttrs, axis: 0 | 1): Dim {
  if (size === null || k === null) return null;
  return windowAxis(size, k, stride, dilation, attrs.padding, attrs.pads[axis])?.out ?? -1;
}

/** Checks strides, dilations, padding and pads; `op` names the op in the error. */
export function checkWindowAttrs(op: string, attrs: WindowAttrs): void {
  const pairOfPositives = (v: readonly number[]) => v.length === 2 && v.every((d) => d >= 1);
  if (!pairOfPositives(attrs.strides))
    throw invalidArgument(`${op}: strides must be two integers >= 1, got [${attrs.strides.join(',')}]`);
  if (!pairOfPositives(attrs.dilations))
    throw invalidArgument(`${op}: dilations must be two integers >= 1, got [${attrs.dilations.join(',')}]`);
  if (attrs.padding !== 'valid' && attrs.padding !== 'same' && attrs.padding !== 'explicit')
    throw invalidArgument(`${op}: padding must be 'valid', 'same' or 'explicit', got '${attrs.padding}'`);
  if (attrs.padding === 'explicit' && attrs.pads.length !== 2)
    throw invalidArgument(`${op}: explicit padding needs pads [[top, bottom], [left, right]]`);
  if (attrs.padding !== 'explicit' && attrs.pads.length !== 0)
    throw invalidArgument(
      `${op}: pads are only allowed with padding 'explicit' (padding is '${attrs.padding}')`,
    );
}

/** The spatial output dims of a window over `input` (NHWC); a shape error names both shapes. */
export function spatialOut(
  op: string,
  input: Shape,
  kh: Dim,
  kw: Dim,
  attrs: WindowAttrs,
  describe: () => string,
): [Dim, Dim] {
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  const oh = outDim(input[1]!, kh, sh, dh, attrs, 0);
  const ow = outDim(input[2]!, kw, sw, dw, attrs, 1);
  if (oh === -1 || ow === -1) {
    throw shapeError(`${op}: the ${describe()} does not fit the input with padding '${attrs.padding}'`);
  }
  return [oh, ow];
}

const windowAttrs = {
  strides: attr.ints.default([1, 1]),
  padding: attr.string.default('valid'),
  pads: attr.pairs.default([]),
  dilations: attr.ints.default([1, 1]),
};

function needFloat4D(op: string, t: TensorType, what: string): void {
  if (t.dtype !== 'float32' || t.shape.length !== 4) {
    throw shapeError(`${op}: ${what} has type ${formatType(t)}; need a float32 tensor of rank 4`);
  }
}

/** a and b agree where both are known; the known one otherwise. */
function unify(a: Dim, b: Dim, fail: () => never): Dim {
  if (a !== null && b !== null && a !== b) fail();
  return a ?? b;
}

// ---------------------------------------------------------------- references

interface ConvDims {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly kh: number;
  readonly kw: number;
  readonly f: number;
  readonly g: Geometry2d;
}

function convDims(xShape: ConcreteShape, filterShape: ConcreteShape, attrs: WindowAttrs): ConvDims {
  const [n, h, w, c] = xShape as [number, number, number, number];
  const [kh, kw, , f] = filterShape as [number, number, number, number];
  return { n, h, w, c, kh, kw, f, g: windowGeometry(h, w, kh, kw, attrs, 'conv2d') };
}

/**
 * Visits every (input element, filter element, output element) triple the convolution multiplies:
 * `visit(xIndex, filterIndex, yIndex)`. The three ops below are this one loop nest, accumulating
 * into a different operand, which is what makes them each other's transposes.
 */
function forEachTap(
  d: ConvDims,
  attrs: WindowAttrs,
  visit: (xi: number, fi: number, yi: number) => void,
): void {
  const [sh, sw] = attrs.strides as [number, number];
  const [dh, dw] = attrs.dilations as [number, number];
  const { n, h, w, c, kh, kw, f, g } = d;
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < g.outH; oy++)
      for (let ox = 0; ox < g.outW; ox++)
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - g.padTop + ky * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - g.padLeft + kx * dw;
            if (ix < 0 || ix >= w) continue;
            for (let ci = 0; ci < c; ci++) {
              const xi = ((b * h + iy) * w + ix) * c + ci;
              const fi = ((ky * kw + kx) * c + ci) * f;
              const yi = ((b * g.outH + oy) * g.outW + ox) * f;
              for (let fo = 0; fo < f; fo++) visit(xi, fi + fo, yi + fo);
            }
          }
        }
}

// ---------------------------------------------------------------- conformance cases

/** A random convolution problem: small, odd sizes, size-1 dims, batch 1, every padding mode. */
function randomConv(rng: Prng, index: number) {
  const padding: PaddingMode = (['valid', 'same', 'explicit'] as const)[index % 3]!;
  const kh = rng.int(1, 3);
  const kw = rng.pick([1, 2, 3]);
  const attrs: WindowAttrs = {
    strides: [rng.pick([1, 1, 2, 3]), rng.pick([1, 2])],
    dilations: index % 4 === 3 ? [rng.int(1, 2), 2] : [1, 1],
    padding,
    pads:
      padding === 'explicit'
        ? [
            [rng.int(0, 2), rng.int(0, 1)],
            [rng.int(0, 1), rng.int(0, 2)],
          ]
        : [],
  };
  // Valid padding needs the input to hold the dilated window at least once.
  const minH = (kh - 1) * attrs.dilations[0]! + 1;
  const minW = (kw - 1) * attrs.dilations[1]! + 1;
  const h = Math.max(minH, rng.pick([1, 2, 3, 5, 7]));
  const w = Math.max(minW, rng.pick([1, 3, 4, 6]));
  const n = index === 7 ? 0 : rng.pick([1, 1, 2, 3]);
  const c = rng.pick([1, 2, 3]);
  const f = rng.pick([1, 2, 5]);
  const g = windowGeometry(h, w, kh, kw, attrs, 'conv2d case');
  return { attrs, x: [n, h, w, c], filter: [kh, kw, c, f], y: [n, g.outH, g.outW, f] };
}

const CONV_CASES = 27;
const f32 = (shape: readonly number[]): ConformanceInput => ({ dtype: 'float32', shape });

// ---------------------------------------------------------------- gradients

/** A node's window attributes as options of the functional API, for the gradient rules. */
const windowOptions = (a: WindowAttrs): nn.Conv2dOptions => ({
  strides: a.strides as [number, number],
  dilations: a.dilations as [number, number],
  padding: a.padding === 'explicit' ? [a.pads[0]!, a.pads[1]!] : (a.padding as 'valid' | 'same'),
});

/**
 * Backprop ops take the spatial sizes their operands cannot determine as attributes, so the rules
 * need them known (a batch size may stay unknown); this says so clearly where they are not.
 */
function needKnown(op: string, shape: Shape, dims: readonly [number, number], what: string): void {
  if (shape.length === 4 && dims.every((d) => shape[d] !== null)) return;
  throw new KilnError('unsupported', `${op} gradient needs a known ${what}; got ${formatShape(shape)}`);
}
const needInputHW = (op: string, s: Shape) => needKnown(op, s, [1, 2], 'input height and width');
const needFilterHW = (op: string, s: Shape) => needKnown(op, s, [0, 1], 'filter height and width');

// ---------------------------------------------------------------- conv2d

const convAttrs = windowAttrs;

export const conv2d: CompositeOpDef<typeof convAttrs> = defineComposite({
  name: 'conv2d',
  kind: 'contraction',
  arity: 2,
  attrs: convAttrs,
  infer([x, filter], attrs) {
    checkWindowAttrs('conv2d', attrs);
    needFloat4D('conv2d', x!, 'input');
    needFloat4D('conv2d', filter!, 'filter');
    const both = `input ${formatType(x!)} and filter ${formatType(filter!)}`;
    const [kh, kw, fc, f] = filter!.shape;
    if (kh === 0 || kw === 0) throw shapeError(`conv2d: the filter of ${both} has an empty window`);
    unify(x!.shape[3]!, fc!, () => {
      throw shapeError(`conv2d: channels differ (${x!.shape[3]} vs ${fc}) for ${both}`);
    });
    const [oh, ow] = spatialOut('conv2d', x!.shape, kh!, kw!, attrs, () => `filter of ${both}`);
    return [{ dtype: 'float32', shape: [x!.shape[0]!, oh, ow, f!] }];
  },
  reference([x, filter], attrs) {
    const d = convDims(x!.shape, filter!.shape, attrs);
    const out = refTensor('float32', [d.n, d.g.outH, d.g.outW, d.f]);
    const y = out.data;
    forEachTap(d, attrs, (xi, fi, yi) => {
      y[yi] = y[yi]! + x!.data[xi]! * filter!.data[fi]!;
    });
    roundTo('float32', y);
    return [out];
  },
  cost([x, filter], [y]) {
    const [kh, kw, c] = filter!.shape as [number, number, number];
    const outs = y!.shape.reduce((a, b) => a * b, 1);
    return { flops: 2 * outs * kh * kw * c, bytes: elementBytes([x!, filter!, y!]) };
  },
  // im2col as a gather, then one matmul: [n*outH*outW, kh*kw*c] x [kh*kw*c, f].
  decompose: ({ attrs, inputs: [x, filter] }) => {
    const [kh, kw, c, f] = filter!.shape as [number, number, number, number];
    const p = windowPlan(x!.shape, kh, kw, attrs, 'conv2d');
    const rows = k.reshape(extractPatches(x!, p, attrs, 0), [p.n * p.outH * p.outW, kh * kw * c]);
    const y = k.matmul(rows, k.reshape(filter!, [kh * kw * c, f]));
    return [k.reshape(y, [p.n, p.outH, p.outW, f])];
  },
  cases(rng) {
    return Array.from({ length: CONV_CASES }, (_, i) => {
      const p = randomConv(rng, i);
      return { inputs: [f32(p.x), f32(p.filter)], attrs: p.attrs };
    });
  },
  tolerance: ([, filter]) => Math.max(1, filter!.shape[0]! * filter!.shape[1]! * filter!.shape[2]!),
  gradient: ({ attrs, inputs: [x, filter], cotangents: [dy] }) => {
    needInputHW('conv2d', x!.shape);
    needFilterHW('conv2d', filter!.shape);
    const o = windowOptions(attrs);
    return [
      nn.conv2dBackpropInput(dy!, filter!, x!.shape, o),
      nn.conv2dBackpropFilter(x!, dy!, filter!.shape, o),
    ];
  },
});

// ---------------------------------------------------------------- conv2dBackpropInput

const backpropInputAttrs = { ...windowAttrs, inputShape: attr.shape };

/**
 * dx of a convolution: the transpose of conv2d in its input, applied to dy. The input's height and
 * width cannot be read off dy (with stride 2, inputs of 7 and 8 rows both give 4 output rows), so
 * the attribute `inputShape` carries them; its batch and channel entries may be null, and are then
 * taken from dy and the filter, so a graph with an unknown batch size still differentiates.
 */
export const conv2dBackpropInput: CompositeOpDef<typeof backpropInputAttrs> = defineComposite({
  name: 'conv2dBackpropInput',
  kind: 'contraction',
  arity: 2,
  attrs: backpropInputAttrs,
  infer([dy, filter], attrs) {
    const op = 'conv2dBackpropInput';
    checkWindowAttrs(op, attrs);
    needFloat4D(op, dy!, 'dy');
    needFloat4D(op, filter!, 'filter');
    const s = attrs.inputShape;
    const both = `dy ${formatType(dy!)} and filter ${formatType(filter!)} for input ${formatShape(s)}`;
    if (s.length !== 4 || s[1] === null || s[2] === null) {
      throw shapeError(`${op}: inputShape ${formatShape(s)} must be [N, H, W, C] with a known H and W`);
    }
    const [kh, kw, fc, f] = filter!.shape;
    if (kh === 0 || kw === 0) throw shapeError(`${op}: the filter of ${both} has an empty window`);
    const n = unify(s[0]!, dy!.shape[0]!, () => {
      throw shapeError(`${op}: batch sizes differ for ${both}`);
    });
    const c = unify(s[3]!, fc!, () => {
      throw shapeError(`${op}: channels differ for ${both}`);
    });
    unify(dy!.shape[3]!, f!, () => {
      throw shapeError(`${op}: output channels differ for ${both}`);
    });
    const [oh, ow] = spatialOut(op, s, kh!, kw!, attrs, () => `filter of ${both}`);
    unify(oh, dy!.shape[1]!, () => {
      throw shapeError(`${op}: dy's height does not match the convolution's output (${oh}) for ${both}`);
    });
    unify(ow, dy!.shape[2]!, () => {
      throw shapeError(`${op}: dy's width does not match the convolution's output (${ow}) for ${both}`);
    });
    return [{ dtype: 'float32', shape: [n, s[1]!, s[2]!, c] }];
  },
  reference([dy, filter], attrs) {
    const xShape = [dy!.shape[0]!, attrs.inputShape[1]!, attrs.inputShape[2]!, filter!.shape[2]!];
    const d = convDims(xShape, filter!.shape, attrs);
    const out = refTensor('float32', xShape);
    const dx = out.data;
    forEachTap(d, attrs, (xi, fi, yi) => {
      dx[xi] = dx[xi]! + dy!.data[yi]! * filter!.data[fi]!;
    });
    roundTo('float32', dx);
    return [out];
  },
  cost([dy, filter], [dx]) {
    const [kh, kw, c] = filter!.shape as [number, number, number];
    const outs = dy!.shape.reduce((a, b) => a * b, 1);
    return { flops: 2 * outs * kh * kw * c, bytes: elementBytes([dy!, filter!, dx!]) };
  },
  // dy x filterᵀ gives each window slot's share; col2im sums the shares of every input element.
  decompose: ({ attrs, inputs: [dy, filter] }) => {
    const [kh, kw, c, f] = filter!.shape as [number, number, number, number];
    const [, h, w] = attrs.inputShape;
    const p = windowPlan([dy!.shape[0]!, h!, w!, c], kh, kw, attrs, 'conv2dBackpropInput');
    const rows = k.reshape(dy!, [p.n * p.outH * p.outW, f]);
    const cols = k.matmul(rows, k.reshape(filter!, [kh * kw * c, f]), { transposeB: true });
    return [scatterPatches(k.reshape(cols, [p.n, p.outH * p.outW * kh * kw, c]), p, attrs)];
  },
  cases(rng) {
    return Array.from({ length: CONV_CASES }, (_, i) => {
      const p = randomConv(rng, i);
      const inputShape = i % 5 === 4 ? [null, p.x[1]!, p.x[2]!, null] : p.x;
      return { inputs: [f32(p.y), f32(p.filter)], attrs: { ...p.attrs, inputShape } };
    });
  },
  tolerance: ([dy, filter]) => Math.max(1, dy!.shape[3]! * filter!.shape[0]! * filter!.shape[1]!),
  // Bilinear in (dy, filter): <c, dx(dy, w)> = <conv2d(c, w), dy> = <c, dx(dy, w)>, so dy's cotangent
  // is a forward convolution of c and the filter's is the filter gradient of (c, dy).
  gradient: ({ attrs, inputs: [dy, filter], cotangents: [c] }) => {
    const o = windowOptions(attrs);
    needFilterHW('conv2dBackpropInput', filter!.shape);
    return [nn.conv2d(c!, filter!, o), nn.conv2dBackpropFilter(c!, dy!, filter!.shape, o)];
  },
});

// ---------------------------------------------------------------- conv2dBackpropFilter

const backpropFilterAttrs = { ...windowAttrs, filterShape: attr.shape };

/**
 * dfilter of a convolution: im2col(x)ᵀ · dy. The window size cannot be read off x and dy, so the
 * attribute `filterShape` carries it; its channel entries may be null (taken from x and dy).
 */
export const conv2dBackpropFilter: CompositeOpDef<typeof backpropFilterAttrs> = defineComposite({
  name: 'conv2dBackpropFilter',
  kind: 'contraction',
  arity: 2,
  attrs: backpropFilterAttrs,
  infer([x, dy], attrs) {
    const op = 'conv2dBackpropFilter';
    checkWindowAttrs(op, attrs);
    needFloat4D(op, x!, 'input');
    needFloat4D(op, dy!, 'dy');
    const s = attrs.filterShape;
    const both = `input ${formatType(x!)} and dy ${formatType(dy!)} for filter ${formatShape(s)}`;
    if (s.length !== 4 || s[0] === null || s[1] === null || s[0] === 0 || s[1] === 0) {
      throw shapeError(`${op}: filterShape ${formatShape(s)} must be [KH, KW, C, F] with known KH, KW >= 1`);
    }
    const c = unify(s[2]!, x!.shape[3]!, () => {
      throw shapeError(`${op}: channels differ for ${both}`);
    });
    const f = unify(s[3]!, dy!.shape[3]!, () => {
      throw shapeError(`${op}: output channels differ for ${both}`);
    });
    unify(x!.shape[0]!, dy!.shape[0]!, () => {
      throw shapeError(`${op}: batch sizes differ for ${both}`);
    });
    const [oh, ow] = spatialOut(op, x!.shape, s[0]!, s[1]!, attrs, () => `filter of ${both}`);
    unify(oh, dy!.shape[1]!, () => {
      throw shapeError(`${op}: dy's height does not match the convolution's output (${oh}) for ${both}`);
    });
    unify(ow, dy!.shape[2]!, () => {
      throw shapeError(`${op}: dy's width does not match the convolution's output (${ow}) for ${both}`);
    });
    return [{ dtype: 'float32', shape: [s[0]!, s[1]!, c, f] }];
  },
  reference([x, dy], attrs) {
    const fShape = [attrs.filterShape[0]!, attrs.filterShape[1]!, x!.shape[3]!, dy!.shape[3]!];
    const d = convDims(x!.shape, fShape, attrs);
    const out = refTensor('float32', fShape);
    const dw = out.data;
    forEachTap(d, attrs, (xi, fi, yi) => {
      dw[fi] = dw[fi]! + x!.data[xi]! * dy!.data[yi]!;
    });
    roundTo('float32', dw);
    return [out];
  },
  cost([x, dy], [dw]) {
    const [kh, kw, c] = dw!.shape as [number, number, number];
    const outs = dy!.shape.reduce((a, b) => a * b, 1);
    return { flops: 2 * outs * kh * kw * c, bytes: elementBytes([x!, dy!, dw!]) };
  },
  // im2col(x)ᵀ x dy, as the op's own definition says.
  decompose: ({ attrs, inputs: [x, dy] }) => {
    const [kh, kw] = attrs.filterShape as [number, number];
    const c = x!.shape[3] as number;
    const f = dy!.shape[3] as number;
    const p = windowPlan(x!.shape, kh, kw, attrs, 'conv2dBackpropFilter');
    const rows = k.reshape(extractPatches(x!, p, attrs, 0), [p.n * p.outH * p.outW, kh * kw * c]);
    const g = k.matmul(rows, k.reshape(dy!, [p.n * p.outH * p.outW, f]), { transposeA: true });
    return [k.reshape(g, [kh, kw, c, f])];
  },
  cases(rng) {
    return Array.from({ length: CONV_CASES }, (_, i) => {
      const p = randomConv(rng, i);
      const filterShape = i % 5 === 2 ? [p.filter[0]!, p.filter[1]!, null, null] : p.filter;
      return { inputs: [f32(p.x), f32(p.y)], attrs: { ...p.attrs, filterShape } };
    });
  },
  tolerance: ([, dy]) => Math.max(1, dy!.shape[0]! * dy!.shape[1]! * dy!.shape[2]!),
  // Bilinear in (x, dy): <c, dw(x, dy)> = <conv2d(x, c), dy>.
  gradient: ({ attrs, inputs: [x, dy], cotangents: [c] }) => {
    const o = windowOptions(attrs);
    needInputHW('conv2dBackpropFilter', x!.shape);
    return [nn.conv2dBackpropInput(dy!, c!, x!.shape, o), nn.conv2d(x!, c!, o)];
  },
});
