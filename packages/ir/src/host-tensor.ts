import { DTYPE_INFO, type DType, dtypeOfArray, type HostArray, isDType } from './dtype.js';
import { invalidArgument } from './errors.js';
import { type ConcreteShape, checkedShape, formatShape, MAX_RANK, sizeOf, stridesOf } from './shape.js';

const PREFIX = 'tensor(';

export type NestedArray = number | boolean | readonly NestedArray[];

/** A tensor in host memory: what Session.run returns and accepts as a feed. */
export class HostTensor {
  /** Checks everything: a dtype, a shape of sizes that fits a tensor, and a typed array of the dtype filling it. */
  constructor(
    readonly dtype: DType,
    readonly shape: ConcreteShape,
    readonly data: HostArray,
  ) {
    if (!isDType(dtype))
      throw invalidArgument(`HostTensor: ${String(dtype)} is not a dtype (float32, int32, bool)`);
    checkedShape(dtype, shape, 'HostTensor');
    if (!(data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint8Array))
      throw invalidArgument(`HostTensor: data must be a Float32Array, Int32Array or Uint8Array`);
    if (dtypeOfArray(data) !== dtype)
      throw invalidArgument(`HostTensor: ${data.constructor.name} cannot hold ${dtype}`);
    if (data.length !== sizeOf(shape)) {
      throw invalidArgument(`HostTensor: ${data.length} elements do not fill shape ${formatShape(shape)}`);
    }
  }

  static zeros(dtype: DType, shape: ConcreteShape): HostTensor {
    // Checked before allocating: a bad or huge shape is an error, not a RangeError or a stall.
    checkedShape(dtype, shape, 'HostTensor.zeros');
    return new HostTensor(dtype, [...shape], DTYPE_INFO[dtype].create(sizeOf(shape)));
  }

  /**
   * From nested arrays (`[[1, 2], [3, 4]]`); the shape is read off the nesting. Every element must
   * be of the dtype's kind: a number for float32, an integer in range for int32, a boolean (or 0
   * or 1) for bool. Anything else (a string, a hole, `undefined`, an object) is an error naming
   * where it is, never a NaN.
   */
  static from(values: NestedArray, dtype: DType = 'float32'): HostTensor {
    if (!isDType(dtype)) throw invalidArgument(`HostTensor.from: ${String(dtype)} is not a dtype`);
    const shape: number[] = [];
    for (let v: unknown = values; Array.isArray(v); v = v[0]) {
      if (shape.length === MAX_RANK)
        throw invalidArgument(`HostTensor.from: nested more than ${MAX_RANK} deep`);
      shape.push(v.length);
      if (v.length === 0) break;
    }
    const data = DTYPE_INFO[dtype].create(sizeOf(shape));
    const store = elementParser(dtype, 'HostTensor.from');
    let n = 0;
    const path: number[] = [];
    const walk = (v: unknown, depth: number): void => {
      if (depth === shape.length) {
        if (Array.isArray(v))
          throw invalidArgument(`HostTensor.from: ragged nesting: element ${at(path)} is an array`);
        data[n++] = store(v, path);
        return;
      }
      if (!Array.isArray(v) || v.length !== shape[depth]) {
        throw invalidArgument(
          `HostTensor.from: ragged nesting: ${at(path)} has ${Array.isArray(v) ? `${v.length} entries` : 'no entries'}, expected ${shape[depth]}`,
        );
      }
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        walk(v[i], depth + 1); // a hole reads as undefined, and is refused as one
        path.pop();
      }
    };
    walk(values, 0);
    return new HostTensor(dtype, shape, data);
  }

  /**
   * From a flat list of numbers in row-major order (a typed array or a plain array), checked as
   * `from` checks; the data is always copied.
   */
  static fromFlat(values: ArrayLike<number>, shape: ConcreteShape, dtype: DType = 'float32'): HostTensor {
    checkedShape(dtype, shape, 'HostTensor.fromFlat');
    const n = sizeOf(shape);
    if (typeof values !== 'object' || values === null || values.length !== n)
      throw invalidArgument(
        `HostTensor.fromFlat: ${typeof values === 'object' && values !== null ? values.length : typeof values} values do not fill shape ${formatShape(shape)}`,
      );
    const data = DTYPE_INFO[dtype].create(n);
    if (dtypeOfArray(data) === dtypeOf(values)) {
      data.set(values as HostArray);
    } else {
      const store = elementParser(dtype, 'HostTensor.fromFlat');
      const path = [0];
      for (let i = 0; i < n; i++) {
        path[0] = i;
        data[i] = store(values[i], path);
      }
    }
    return new HostTensor(dtype, [...shape], data);
  }
  get size(): number {
    return this.data.length;
  }

  /** The values as nested arrays, for printing or JSON. */
  toArray(): NestedArray {
    const values = Array.from(this.data, (x) => (this.dtype === 'bool' ? x !== 0 : x));
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return values[offset]!;
      const stride = stridesOf(this.shape)[dim]!;
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** numpy-like: values abbreviated past `edge` entries per dimension. */
  toString(edge = 3): string {
    const fmt = (x: number) =>
      this.dtype === 'bool'
        ? x
          ? 'true'
          : 'false'
        : this.dtype === 'int32'
          ? String(x)
          : Number(x.toPrecision(6)).toString();
    const strides = stridesOf(this.shape);
    const render = (dim: number, offset: number): string => {
      if (dim === this.shape.length) return fmt(this.data[offset]!);
      const n = this.shape[dim]!;
      const idx =
        n > 2 * edge
          ? [...Array(edge).keys(), -1, ...Array.from({ length: edge }, (_, i) => n - edge + i)]
          : [...Array(n).keys()];
      const parts = idx.map((i) => (i < 0 ? '...' : render(dim + 1, offset + i * strides[dim]!)));
      // Rows line up under the first one, past the 'tensor(' prefix.
      return `[${parts.join(dim === this.shape.length - 1 ? ', ' : `,\n${' '.repeat(PREFIX.length + dim + 1)}`)}]`;
    };
    return `${PREFIX}${render(0, 0)}, dtype=${this.dtype}, shape=${formatShape(this.shape)})`;
  }
}

const at = (path: readonly number[]) => (path.length === 0 ? 'the value' : `[${path.join('][')}]`);

function dtypeOf(values: ArrayLike<number>): DType | null {
  return values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array
    ? dtypeOfArray(values)
    : null;
}

function shown(v: unknown): string {
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v)}`;
  if (v === undefined) return 'undefined (a hole, or a missing value)';
  if (v === null) return 'null';
  if (typeof v === 'object') return `an object (${v.constructor?.name ?? 'no prototype'})`;
  return `${typeof v} ${String(v)}`;
}

/** Checks one element against its dtype and gives the number stored for it. */
function elementParser(dtype: DType, where: string): (v: unknown, path: readonly number[]) => number {
  const bad = (v: unknown, path: readonly number[], want: string) =>
    invalidArgument(`${where}: element ${at(path)} is ${shown(v)}; a ${dtype} tensor takes ${want}`);
  switch (dtype) {
    case 'float32':
      return (v, path) => {
        if (typeof v !== 'number') throw bad(v, path, 'numbers');
        return Math.fround(v);
      };
    case 'int32':
      return (v, path) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31)
          throw bad(v, path, 'integers from -2^31 to 2^31 - 1 (cast floats explicitly)');
        return v;
      };
    case 'bool':
      return (v, path) => {
        if (typeof v === 'boolean') return v ? 1 : 0;
        if (v === 0 || v === 1) return v;
        throw bad(v, path, 'booleans (or 0 and 1)');
      };
    default:
      return dtype satisfies never;
  }
}
