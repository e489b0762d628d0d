import { DTYPE_INFO, type DType, dtypeOfArray, type HostArray } from './dtype.js';
import { invalidArgument } from './errors.js';
import { type ConcreteShape, formatShape, sizeOf, stridesOf } from './shape.js';

const PREFIX = 'tensor(';

export type NestedArray = number | boolean | readonly NestedArray[];

/** A tensor in host memory: what Session.run returns and accepts as a feed. */
export class HostTensor {
  constructor(
    readonly dtype: DType,
    readonly shape: ConcreteShape,
    readonly data: HostArray,
  ) {
    if (data.length !== sizeOf(shape)) {
      throw invalidArgument(`HostTensor: ${data.length} elements do not fill shape ${formatShape(shape)}`);
    }
    if (dtypeOfArray(data) !== dtype)
      throw invalidArgument(`HostTensor: ${data.constructor.name} cannot hold ${dtype}`);
  }

  static zeros(dtype: DType, shape: ConcreteShape): HostTensor {
    return new HostTensor(dtype, [...shape], DTYPE_INFO[dtype].create(sizeOf(shape)));
  }

  /** From nested arrays (`[[1, 2], [3, 4]]`); the shape is read off the nesting. */
  static from(values: NestedArray, dtype: DType = 'float32'): HostTensor {
    const shape: number[] = [];
    for (let v: NestedArray = values; Array.isArray(v); v = (v as readonly NestedArray[])[0]!) {
      shape.push((v as readonly NestedArray[]).length);
      if ((v as readonly NestedArray[]).length === 0) break;
    }
    const flat: number[] = [];
    const walk = (v: NestedArray, depth: number) => {
      if (depth === shape.length) {
        if (Array.isArray(v)) throw invalidArgument(`HostTensor.from: ragged nesting at depth ${depth}`);
        flat.push(Number(v));
        return;
      }
      if (!Array.isArray(v) || v.length !== shape[depth]) {
        throw invalidArgument(
          `HostTensor.from: ragged nesting at depth ${depth}; expected ${shape[depth]} entries`,
        );
      }
      for (const x of v as readonly NestedArray[]) walk(x, depth + 1);
    };
    walk(values, 0);
    const data = DTYPE_INFO[dtype].create(flat.length);
    const round = DTYPE_INFO[dtype].round;
    flat.forEach((x, i) => {
      data[i] = round(x);
    });
    return new HostTensor(dtype, shape, data);
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
