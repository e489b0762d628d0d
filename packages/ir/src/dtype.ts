/**
 * Element types. Each dtype records how it is stored so that new storage types (float16, bfloat16)
 * can be added here without touching the ops: kernels ask for `storage`, never switch on names.
 */
export type DType = 'float32' | 'int32' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'int32', 'bool'];

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : Uint8Array;

export type HostArray = Float32Array | Int32Array | Uint8Array;

export interface DTypeInfo {
  readonly name: DType;
  readonly bytes: number;
  readonly isFloat: boolean;
  readonly isInt: boolean;
  /** Short name for printing graphs: f32, i32, bool. */
  readonly short: string;
  readonly create: (length: number) => HostArray;
  /** A typed array over `length` elements of `bytes` from `byteOffset`: a view, not a copy. */
  readonly view: (bytes: ArrayBufferLike, byteOffset: number, length: number) => HostArray;
  /** Rounds a float64 to the value this dtype stores (the semantics of storing into this dtype). */
  readonly round: (x: number) => number;
}

/**
 * How the references store float32 results: rounded, as a device would. Gradient checks switch
 * this off (see withFloat64References) so finite differences see float64 arithmetic throughout.
 */
let float32Store: (x: number) => number = Math.fround;

export function roundFloat32(x: number): number {
  return float32Store(x);
}

/** Runs `fn` with the reference implementations keeping float64 precision for float32 values. */
export function withFloat64References<T>(fn: () => T): T {
  const saved = float32Store;
  float32Store = (x) => x;
  try {
    return fn();
  } finally {
    float32Store = saved;
  }
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** float -> int32 conversion: truncate toward zero, saturate at the int32 bounds, NaN -> 0. */
export function toInt32Saturating(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x >= INT32_MAX) return INT32_MAX;
  if (x <= INT32_MIN) return INT32_MIN;
  return Math.trunc(x);
}

export const DTYPE_INFO: { readonly [D in DType]: DTypeInfo } = {
  float32: {
    name: 'float32',
    bytes: 4,
    isFloat: true,
    isInt: false,
    short: 'f32',
    create: (n) => new Float32Array(n),
    view: (b, o, n) => new Float32Array(b, o, n),
    round: roundFloat32,
  },
  int32: {
    name: 'int32',
    bytes: 4,
    isFloat: false,
    isInt: true,
    short: 'i32',
    create: (n) => new Int32Array(n),
    view: (b, o, n) => new Int32Array(b, o, n),
    round: toInt32Saturating,
  },
  bool: {
    name: 'bool',
    bytes: 1,
    isFloat: false,
    isInt: false,
    short: 'bool',
    create: (n) => new Uint8Array(n),
    view: (b, o, n) => new Uint8Array(b, o, n),
    round: (x) => (x !== 0 ? 1 : 0),
  },
};

export function isDType(x: unknown): x is DType {
  return x === 'float32' || x === 'int32' || x === 'bool';
}

export function dtypeOfArray(a: HostArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int32Array) return 'int32';
  return 'bool';
}
