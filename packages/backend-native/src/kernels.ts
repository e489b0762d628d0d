import {
  broadcastIndex,
  type KernelFactory,
  type KernelTable,
  REFERENCE_KERNELS,
  referenceKernel,
} from '@kiln/ir';
import type { NativeAddon } from './addon.js';

/**
 * The native device's kernel table: OpenBLAS for matmul and native loops for float32 arithmetic,
 * over the reference kernels for every other primitive (correct, and slow: the next kernels to
 * move to C++). A case a native kernel does not cover (int32, broadcasting other than a scalar)
 * falls back to the reference kernel of the same op, decided once, when the node is compiled.
 */
export function nativeKernels(addon: NativeAddon): KernelTable {
  return {
    ...REFERENCE_KERNELS,
    matmul: matmul(addon),
    add: binary(addon, 'add', 0),
    sub: binary(addon, 'sub', 1),
    mul: binary(addon, 'mul', 2),
    div: binary(addon, 'div', 3),
    maximum: binary(addon, 'maximum', 4),
    minimum: binary(addon, 'minimum', 5),
  };
}

function matmul(addon: NativeAddon): KernelFactory<{ transposeA: boolean; transposeB: boolean }> {
  const fallback = referenceKernel('matmul');
  return (node) => {
    const [a, b] = node.inputs as [
      { dtype: string; shape: readonly number[] },
      { dtype: string; shape: readonly number[] },
    ];
    const out = node.outputs[0]!.shape;
    if (a.dtype !== 'float32') return fallback(node);
    const { transposeA, transposeB } = node.attrs;
    const r = out.length;
    const [m, n] = [out[r - 2]!, out[r - 1]!];
    const k = transposeA ? a.shape[a.shape.length - 2]! : a.shape[a.shape.length - 1]!;
    // Each output batch's operands, broadcast as numpy does: offsets computed once per node.
    const batchShape = out.slice(0, r - 2);
    const batches = batchShape.reduce((x, y) => x * y, 1);
    const aBatch = broadcastIndex(batchShape, a.shape.slice(0, -2));
    const bBatch = broadcastIndex(batchShape, b.shape.slice(0, -2));
    const aOffsets = Int32Array.from({ length: batches }, (_, t) => aBatch(t) * m * k);
    const bOffsets = Int32Array.from({ length: batches }, (_, t) => bBatch(t) * k * n);
    const cOffsets = Int32Array.from({ length: batches }, (_, t) => t * m * n);
    return ([x, y], [z]) =>
      addon.sgemmBatched(
        transposeA,
        transposeB,
        m,
        n,
        k,
        x as Float32Array,
        y as Float32Array,
        z as Float32Array,
        aOffsets,
        bOffsets,
        cOffsets,
      );
  };
}

function binary(
  addon: NativeAddon,
  op: 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum',
  code: number,
): KernelFactory<unknown> {
  const fallback = referenceKernel(op);
  return (node) => {
    const [a, b] = node.inputs;
    const size = (shape: readonly number[]) => shape.reduce((x, y) => x * y, 1);
    const outSize = size(node.outputs[0]!.shape);
    // Same shape, or b a single value: one native loop. Anything else broadcasts in the reference.
    const native =
      a!.dtype === 'float32' &&
      size(a!.shape) === outSize &&
      a!.shape.length === node.outputs[0]!.shape.length &&
      (size(b!.shape) === 1 ||
        (b!.shape.length === a!.shape.length && b!.shape.every((d, i) => d === a!.shape[i])));
    if (!native) return fallback(node);
    return ([x, y], [z]) => addon.binaryF32(code, x as Float32Array, y as Float32Array, z as Float32Array);
  };
}
