import { type ConcreteShape, sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, type TensorArg, u32, WG } from '../shader.js';

/** Where tensor t's element for iteration index c lies: base + sum(c[d] * strides[d]). */
export interface Indexing {
  readonly base: number;
  readonly strides: readonly number[];
}

/** Row-major strides of a shape. */
export function rowMajor(shape: ConcreteShape): number[] {
  const s = new Array<number>(shape.length).fill(0);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** Strides reading `shape` broadcast to `outShape` (numpy rules): 0 along broadcast dimensions. */
export function broadcastStrides(shape: ConcreteShape, outShape: ConcreteShape): number[] {
  const own = rowMajor(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((d, i) => (i < lead || (shape[i - lead] === 1 && d !== 1) ? 0 : own[i - lead]!));
}

export const contiguous = (shape: ConcreteShape): Indexing => ({ base: 0, strides: rowMajor(shape) });

/**
 * A thread per element of an iteration space `shape`: each tensor is addressed through its own
 * base and strides (broadcast, transposed, sliced or scattered), and `statements` (WGSL, using
 * `ldK(jK)` and `stK(jK, v)`) does the work. Elementwise ops, fusion groups and the layout ops are
 * all this one kernel; the key holds only the rank, so every shape of that rank shares a pipeline.
 */
export function mapDispatch(
  key: string,
  shape: ConcreteShape,
  tensors: readonly TensorArg[],
  indexing: readonly Indexing[],
  statements: string,
  extra: readonly number[] = [],
): Dispatch {
  const r = shape.length;
  const n = sizeOf(shape);
  const params: number[] = [n, ...shape];
  for (const ix of indexing) params.push(u32(ix.base), ...ix.strides.map(u32));
  params.push(...extra.map(u32));
  const tensorParam = (t: number) => 1 + r + t * (r + 1);
  let idx = '';
  tensors.forEach((_, t) => {
    idx += `  var j${t} = P(${tensorParam(t)}u);\n`;
  });
  for (let d = r - 1; d >= 0; d--) {
    idx += `  { let c = rem % P(${1 + d}u); rem = rem / P(${1 + d}u);`;
    tensors.forEach((_, t) => {
      idx += ` j${t} = j${t} + c * P(${tensorParam(t) + 1 + d}u);`;
    });
    idx += ' }\n';
  }
  const body = `${ENTRY(WG)} {
  let i = gid(wid, nwg) * ${WG}u + lid;
  if (i >= P(0u)) { return; }
  var rem = i;
${idx}${statements}
}`;
  return {
    key: `map:${key}:r${r}`,
    body,
    tensors,
    params,
    workgroups: Math.ceil(n / WG),
  };
}

/** Index of the first of `extra` parameters in a map dispatch's uniform, for WGSL `P(...)`. */
export const mapExtra = (rank: number, tensors: number, k = 0) =>
  `P(${1 + rank + tensors * (rank + 1) + k}u)`;
