import type { DType } from './dtype.js';
import { DTYPE_INFO, isDType } from './dtype.js';
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

/** The most dimensions a tensor may have. */
export const MAX_RANK = 16;

/**
 * The most bytes one tensor may hold: 4 GiB - 1, the longest byte array JavaScript engines address
 * (a tensor is read back as one) and about the largest buffer WebGPU adapters allow. It also keeps
 * every element index within an int32, which kernels on every device rely on.
 */
export const MAX_TENSOR_BYTES = 2 ** 32 - 1;

/** Checks that a shape's dimensions are sizes (or `null` where allowed) and that there are not too many. */
export function assertValidShape(shape: readonly unknown[], where: string, allowUnknown: boolean): void {
  if (!Array.isArray(shape))
    throw invalidArgument(`${where}: a shape must be an array, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) {
    throw invalidArgument(
      `${where}: shape has ${shape.length} dimensions, more than the ${MAX_RANK} a tensor may have`,
    );
  }
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (d === null && allowUnknown) continue;
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      const shown = shape.map((x) => (typeof x === 'number' || x === null ? String(x) : describe(x)));
      throw invalidArgument(
        `${where}: dimension ${i} of shape [${shown.join(',')}] is not a non-negative integer`,
      );
    }
  }
}

/** Checks that a tensor of this type (its known dimensions) fits in MAX_TENSOR_BYTES. */
export function assertTensorFits(type: TensorType, where: string): void {
  let elements = 1;
  for (const d of type.shape) if (d !== null) elements *= d;
  const bytes = elements * DTYPE_INFO[type.dtype].bytes;
  if (bytes > MAX_TENSOR_BYTES) {
    throw shapeError(
      `${where}: ${formatType(type)} would take ${bytes.toPrecision(3)} bytes; a tensor holds at most ${MAX_TENSOR_BYTES} (4 GiB)`,
    );
  }
}

/** A shape from a caller, checked whole (sizes, rank, and the size of the tensor it describes). */
export function checkedShape(dtype: DType, shape: unknown, where: string): ConcreteShape {
  if (!isDType(dtype)) {
    const d: unknown = dtype;
    const shown = typeof d === 'string' ? `'${d.slice(0, 20)}'` : typeof d;
    throw invalidArgument(`${where}: ${shown} is not a dtype (float32, int32, bool)`);
  }
  assertValidShape(shape as readonly unknown[], where, false);
  assertTensorFits({ dtype, shape: shape as ConcreteShape }, where);
  return shape as ConcreteShape;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (typeof x === 'string') return `the string ${JSON.stringify(x.slice(0, 20))}`;
  return typeof x === 'object' ? (x.constructor?.name ?? 'an object') : typeof x;
}
