import type { KernelFactory } from '@kiln/ir';
import { DTYPE_INFO, type DType, type HostArray, normalizeAxis, stridesOf, type TensorValue } from '@kiln/ir';
import { collapse } from './strided.js';

/**
 * Layout kernels move elements without arithmetic. Most are a strided copy: the output walked in
 * order, the input through permuted or offset strides.
 */
type Copy = (src: HostArray, dst: HostArray, srcOffset: number) => void;

/** Copies a strided view of `src` (shape, per-dimension source strides) into `dst` in order. */
function stridedCopy(shape: readonly number[], srcStrides: readonly number[]): Copy {
  const { shape: dims, strides } = collapse(shape, [srcStrides, stridesOf(shape)]);
  const st = strides[0]!;
  const rank = dims.length;
  const inner = dims[rank - 1]!;
  const innerStride = st[rank - 1]!;
  const total = shape.reduce((a, b) => a * b, 1);
  return (src, dst, srcOffset) => {
    if (total === 0) return;
    if (rank === 1 && innerStride === 1) {
      dst.set(src.subarray(srcOffset, srcOffset + total));
      return;
    }
    const idx = new Int32Array(rank);
    let base = srcOffset;
    for (let o = 0; o < total; ) {
      if (innerStride === 1) {
        dst.set(src.subarray(base, base + inner), o);
        o += inner;
      } else {
        for (let j = 0, i = base; j < inner; j++, i += innerStride) dst[o++] = src[i]!;
      }
      for (let d = rank - 2; d >= 0; d--) {
        base += st[d]!;
        if (++idx[d]! < dims[d]!) break;
        idx[d] = 0;
        base -= st[d]! * dims[d]!;
      }
    }
  };
}

/** A copy of a tensor of `shape` into the axis order `perm` (used by transpose and reductions). */
export function permutedCopy(shape: readonly number[], perm: readonly number[]): (x: HostArray) => HostArray {
  const st = stridesOf(shape);
  const copy = stridedCopy(
    perm.map((a) => shape[a]!),
    perm.map((a) => st[a]!),
  );
  const size = shape.reduce((a, b) => a * b, 1);
  let scratch: HostArray | null = null;
  return (x) => {
    if (!scratch || scratch.constructor !== x.constructor)
      scratch = new (x.constructor as new (n: number) => HostArray)(size);
    copy(x, scratch, 0);
    return scratch;
  };
}

export const reshape: KernelFactory<unknown> =
  () =>
  ([x], [out]) =>
    out!.set(x!);

export const transpose: KernelFactory<{ perm: readonly number[] | null }> = (node) => {
  const shape = node.inputs[0]!.shape;
  const perm = node.attrs.perm ?? shape.map((_, i) => shape.length - 1 - i);
  const st = stridesOf(shape);
  const copy = stridedCopy(
    perm.map((a) => shape[a]!),
    perm.map((a) => st[a]!),
  );
  return ([x], [out]) => copy(x!, out!, 0);
};

export const slice: KernelFactory<{ begin: readonly number[]; size: readonly number[] }> = (node) => {
  const inShape = node.inputs[0]!.shape;
  const st = stridesOf(inShape);
  const offset = node.attrs.begin.reduce((n, b, d) => n + b * st[d]!, 0);
  const copy = stridedCopy(node.outputs[0]!.shape, st);
  return ([x], [out]) => copy(x!, out!, offset);
};

export const pad: KernelFactory<{ paddings: readonly (readonly [number, number])[]; value: number }> = (
  node,
) => {
  const inShape = node.inputs[0]!.shape;
  const outShape = node.outputs[0]!.shape;
  const outStrides = stridesOf(outShape);
  const offset = node.attrs.paddings.reduce((n, [before], d) => n + before * outStrides[d]!, 0);
  // Write the input through the output's strides: a strided copy in reverse.
  const { shape: dims, strides } = collapse(inShape, [outStrides]);
  const st = strides[0]!;
  const total = inShape.reduce((a, b) => a * b, 1);
  const fill = DTYPE_INFO[node.inputs[0]!.dtype].round(node.attrs.value);
  return ([x], [out]) => {
    out!.fill(fill);
    if (total === 0) return;
    const rank = dims.length;
    const idx = new Int32Array(rank);
    let base = offset;
    for (let i = 0; i < total; ) {
      for (let j = 0, p = base; j < dims[rank - 1]!; j++, p += st[rank - 1]!) out![p] = x![i++]!;
      for (let d = rank - 2; d >= 0; d--) {
        base += st[d]!;
        if (++idx[d]! < dims[d]!) break;
        idx[d] = 0;
        base -= st[d]! * dims[d]!;
      }
    }
  };
};

export const gather: KernelFactory<{ axis: number }> = (node) => {
  const pShape = node.inputs[0]!.shape;
  const axis = normalizeAxis(node.attrs.axis, pShape.length, 'gather');
  const outer = pShape.slice(0, axis).reduce((a, b) => a * b, 1);
  const size = pShape[axis]!;
  const inner = pShape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const count = node.inputs[1]!.shape.reduce((a, b) => a * b, 1);
  return ([params, indices], [out]) => {
    let o = 0;
    for (let b = 0; b < outer; b++) {
      for (let k = 0; k < count; k++, o += inner) {
        const i = indices![k]!;
        // Out-of-range indices select zeros, as on every device (see the op's definition).
        if (i < 0 || i >= size) out!.fill(0, o, o + inner);
        else out!.set(params!.subarray((b * size + i) * inner, (b * size + i + 1) * inner), o);
      }
    }
  };
};

export const oneHot: KernelFactory<{ depth: number; onValue: number; offValue: number; dtype: DType }> = (
  node,
) => {
  const { depth, onValue, offValue, dtype } = node.attrs;
  const round = DTYPE_INFO[dtype].round;
  const on = round(onValue);
  const off = round(offValue);
  return ([indices], [out]) => {
    out!.fill(off);
    for (let k = 0; k < indices!.length; k++) {
      const i = indices![k]!;
      if (i >= 0 && i < depth) out![k * depth + i] = on;
    }
  };
};

export const constant: KernelFactory<{ value: TensorValue }> = (node) => {
  const data = node.attrs.value.data;
  return (_, [out]) => out!.set(data);
};
