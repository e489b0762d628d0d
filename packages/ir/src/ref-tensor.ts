import type { DType } from './dtype.js';
import { DTYPE_INFO } from './dtype.js';
import { type ConcreteShape, sizeOf, stridesOf } from './shape.js';

/**
 * A host tensor in float64, used by the reference implementations. Every value of every dtype is
 * exact in float64 (bools are 0/1, int32 fits), so one representation serves all of them.
 */
export interface RefTensor {
  readonly dtype: DType;
  readonly shape: ConcreteShape;
  readonly data: Float64Array;
}

export function refTensor(dtype: DType, shape: ConcreteShape, data?: ArrayLike<number>): RefTensor {
  const out = new Float64Array(sizeOf(shape));
  if (data) {
    const round = DTYPE_INFO[dtype].round;
    for (let i = 0; i < out.length; i++) out[i] = round(data[i]!);
  }
  return { dtype, shape: [...shape], data: out };
}

/** Rounds every element to what its dtype stores: a reference result as the device would hold it. */
export function roundTo(dtype: DType, data: Float64Array): Float64Array {
  const round = DTYPE_INFO[dtype].round;
  for (let i = 0; i < data.length; i++) data[i] = round(data[i]!);
  return data;
}

/**
 * Maps a flat index of `outShape` to the flat index of the input that broadcasts to it. Written
 * for clarity, not speed: this is the reference.
 */
export function broadcastIndex(outShape: ConcreteShape, inShape: ConcreteShape): (flat: number) => number {
  const rank = outShape.length;
  const offset = rank - inShape.length;
  const inStrides = stridesOf(inShape);
  const outStrides = stridesOf(outShape);
  return (flat) => {
    let idx = 0;
    for (let d = offset; d < rank; d++) {
      const coord = Math.floor(flat / outStrides[d]!) % outShape[d]!;
      const inDim = inShape[d - offset]!;
      if (inDim !== 1) idx += coord * inStrides[d - offset]!;
    }
    return idx;
  };
}

export function unravel(flat: number, shape: ConcreteShape): number[] {
  const coords = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    coords[d] = flat % n;
    flat = Math.floor(flat / n);
  }
  return coords;
}

export function ravel(coords: readonly number[], shape: ConcreteShape): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + coords[d]!;
  return flat;
}
