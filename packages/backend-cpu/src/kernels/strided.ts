import { stridesOf } from '@kiln/ir';

/**
 * Strides (in elements) with which an input of `shape` is read when broadcast to `outShape`:
 * 0 along broadcast dimensions.
 */
export function broadcastStrides(outShape: readonly number[], shape: readonly number[]): number[] {
  const offset = outShape.length - shape.length;
  const own = stridesOf(shape);
  return outShape.map((_, d) => (d < offset || shape[d - offset] === 1 ? 0 : own[d - offset]!));
}

/**
 * Merges adjacent dimensions that every operand walks contiguously (or all broadcast), so a
 * [64, 1000] + [1000] add becomes a 2-D loop and a same-shape add a flat one.
 */
export function collapse(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const keep = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  let dims = keep.map((d) => shape[d]!);
  let st = strides.map((s) => keep.map((d) => s[d]!));
  if (dims.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  const outShape: number[] = [dims[0]!];
  const outSt = st.map((s) => [s[0]!]);
  for (let d = 1; d < dims.length; d++) {
    const n = dims[d]!;
    const last = outShape.length - 1;
    const mergeable = st.every((s, k) => outSt[k]![last] === s[d]! * n);
    if (mergeable) {
      outShape[last] = outShape[last]! * n;
      st.forEach((s, k) => {
        outSt[k]![last] = s[d]!;
      });
    } else {
      outShape.push(n);
      st.forEach((s, k) => outSt[k]!.push(s[d]!));
    }
  }
  dims = outShape;
  st = outSt;
  return { shape: dims, strides: st };
}

/**
 * Which inputs of a collapsed loop are one value over the whole (rank-1) output: they can be read
 * once, before a straight loop (see compileStridedLoop).
 */
export const scalarInputs = (shape: readonly number[], strides: readonly (readonly number[])[]): boolean[] =>
  strides.map((s) => shape.length === 1 && shape[0]! > 1 && s[0] === 0);
