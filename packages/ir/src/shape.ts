import type { DType } from './dtype.js';
import { DTYPE_INFO } from './dtype.js';
import { invalidArgument, shapeError } from './errors.js';

/** A dimension: a size, or `null` where a placeholder leaves it unknown until run time. */
export type Dim = number | null;
export type Shape = readonly Dim[];
/** A shape whose every dimension is known. */
export type ConcreteShape = readonly number[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export function isConcrete(shape: Shape): shape is ConcreteShape {
  return shape.every((d) => d !== null);
}

export function sizeOf(shape: ConcreteShape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function byteSizeOf(type: { dtype: DType; shape: ConcreteShape }): number {
  return sizeOf(type.shape) * DTYPE_INFO[type.dtype].bytes;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: ConcreteShape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function formatShape(shape: Shape): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

export function formatType(t: TensorType): string {
  return `${DTYPE_INFO[t.dtype].short}${formatShape(t.shape)}`;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Whether a concrete shape is an instance of a possibly partial one. */
export function shapeMatches(concrete: ConcreteShape, pattern: Shape): boolean {
  return concrete.length === pattern.length && pattern.every((d, i) => d === null || d === concrete[i]);
}

/**
 * numpy broadcasting of two shapes; `null` if they do not broadcast. An unknown dimension against 1
 * stays unknown; against a known size n it becomes n (a run with another size fails its own check).
 */
export function tryBroadcastShapes(a: Shape, b: Shape): Dim[] | null {
  const rank = Math.max(a.length, b.length);
  const out = new Array<Dim>(rank);
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (da === 1) out[i] = db;
    else if (db === 1) out[i] = da;
    else if (da === null) out[i] = db;
    else if (db === null || da === db) out[i] = da;
    else return null;
  }
  return out;
}

export function broadcastShapes(a: Shape, b: Shape, where: string): Dim[] {
  const out = tryBroadcastShapes(a, b);
  if (!out) throw shapeError(`${where}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
  return out;
}

/** Resolves a possibly negative axis against a rank. */
export function normalizeAxis(axis: number, rank: number, where: string): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw invalidArgument(`${where}: axis ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

export function normalizeAxes(axes: readonly number[] | null, rank: number, where: string): number[] {
  if (axes === null) return Array.from({ length: rank }, (_, i) => i);
  const out = axes.map((a) => normalizeAxis(a, rank, where));
  if (new Set(out).size !== out.length)
    throw invalidArgument(`${where}: repeated axis in [${axes.join(',')}]`);
  return out.sort((x, y) => x - y);
}

export function assertValidShape(shape: readonly unknown[], where: string, allowUnknown: boolean): void {
  for (const d of shape) {
    if (d === null && allowUnknown) continue;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw invalidArgument(`${where}: invalid dimension ${String(d)} in shape [${shape.join(',')}]`);
    }
  }
}
