/**
 * Where a sliding window starts on the input, recomputed from the concrete input and output sizes
 * (TensorFlow's padding rules, as in @kiln/ir's ops/conv.ts): the padding before the first row.
 */
export function padBefore(
  size: number,
  out: number,
  k: number,
  stride: number,
  dilation: number,
  padding: string,
  explicit: readonly [number, number] | undefined,
): number {
  if (padding === 'same') {
    const extent = (k - 1) * dilation + 1;
    return Math.floor(Math.max((out - 1) * stride + extent - size, 0) / 2);
  }
  return padding === 'explicit' ? explicit![0] : 0;
}
