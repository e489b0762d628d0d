import { broadcastIndex, type HostArray, type KernelFactory, type KernelFn, referenceKernel } from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import { maybeOffThread, OFF_THREAD_FLOPS, type Threading } from './threading.js';

/**
 * Products of at least this many flops run on oneDNN's matmul primitive (native/matmul.cc), smaller
 * ones on OpenBLAS's sgemm: a call into oneDNN costs a few microseconds more (its memory objects
 * and stream), about what a product of this size takes.
 */
export const ONEDNN_MATMUL_FLOPS = 2 ** 19;
/**
 * Except products of at least this many flops (about 1300^3 x 2) where OpenBLAS runs its AVX-512
 * kernels: there it packs as well as oneDNN and its kernels measured 4-8% faster at 2048 (1 and 2
 * threads); from 256 to 1024 the two measured the same or oneDNN faster.
 */
export const OPENBLAS_MATMUL_FLOPS = 2 ** 32;
const AVX512_BLAS_KERNELS = /skylakex|cooperlake|sapphirerapids/i;

/** Which library runs a float32 product of `flops`. */
export function matmulLibrary(addon: NativeAddon, flops: number): 'onednn' | 'openblas' {
  if (flops < ONEDNN_MATMUL_FLOPS) return 'openblas';
  return flops >= OPENBLAS_MATMUL_FLOPS && AVX512_BLAS_KERNELS.test(addon.blasCore) ? 'openblas' : 'onednn';
}

type Shape = readonly number[];

/** The sizes of a product, as matmul's attributes read its operands. */
export function productSize(a: Shape, out: Shape, transposeA: boolean) {
  const r = out.length;
  const [m, n] = [out[r - 2]!, out[r - 1]!];
  const k = transposeA ? a[a.length - 2]! : a[a.length - 1]!;
  const batchShape = out.slice(0, r - 2);
  const batches = batchShape.reduce((x, y) => x * y, 1);
  return { m, n, k, batchShape, batches, flops: 2 * batches * m * n * k };
}

/**
 * The node's oneDNN primitive (adding a bias of `bias`'s shape, where given), or undefined where
 * oneDNN cannot make one, or only as its reference loops (the caller then runs the product on
 * OpenBLAS).
 */
export function onednnMatmul(
  addon: NativeAddon,
  a: Shape,
  b: Shape,
  out: Shape,
  transposeA: boolean,
  transposeB: boolean,
  bias?: Shape,
): object | undefined {
  const dims = (s: Shape) => Float64Array.from(s);
  try {
    return bias
      ? addon.createMatmul(dims(a), dims(b), dims(out), transposeA, transposeB, dims(bias))
      : addon.createMatmul(dims(a), dims(b), dims(out), transposeA, transposeB);
  } catch {
    return undefined;
  }
}

/** A kernel running a createMatmul primitive on inputs 0 and 1, and the bias at input `bias`. */
export function onednnKernel(
  addon: NativeAddon,
  threading: Threading,
  primitive: object,
  flops: number,
  bias?: number,
): KernelFn {
  const { threads } = threading;
  const run = <Q extends boolean>(ins: readonly HostArray[], [z]: readonly HostArray[], queued: Q) =>
    addon.runMatmul(
      primitive,
      ins[0] as Float32Array,
      ins[1] as Float32Array,
      bias === undefined ? null : (ins[bias] as Float32Array),
      z as Float32Array,
      threads,
      queued,
    );
  return maybeOffThread(
    threading,
    flops >= OFF_THREAD_FLOPS,
    (ins, outs) => run(ins, outs, false),
    (ins, outs) => run(ins, outs, true),
  );
}

/** matmul: oneDNN or OpenBLAS (see matmulLibrary) for float32, the reference kernel otherwise. */
export function matmulKernel(
  addon: NativeAddon,
  threading: Threading,
): KernelFactory<{ transposeA: boolean; transposeB: boolean }> {
  const fallback = referenceKernel('matmul');
  return (node) => {
    const [a, b] = node.inputs as [
      { dtype: string; shape: readonly number[] },
      { dtype: string; shape: readonly number[] },
    ];
    const out = node.outputs[0]!.shape;
    if (a.dtype !== 'float32') return fallback(node);
    const { transposeA, transposeB } = node.attrs;
    const { m, n, k, batchShape, batches, flops } = productSize(a.shape, out, transposeA);
    const primitive =
      matmulLibrary(addon, flops) === 'onednn'
        ? onednnMatmul(addon, a.shape, b.shape, out, transposeA, transposeB)
        : undefined;
    if (primitive) return onednnKernel(addon, threading, primitive, flops);
    // OpenBLAS: each output batch's operands, broadcast as numpy does, by offsets computed once.
    const aBatch = broadcastIndex(batchShape, a.shape.slice(0, -2));
    const bBatch = broadcastIndex(batchShape, b.shape.slice(0, -2));
    const aOffsets = Int32Array.from({ length: batches }, (_, t) => aBatch(t) * m * k);
    const bOffsets = Int32Array.from({ length: batches }, (_, t) => bBatch(t) * k * n);
    const cOffsets = Int32Array.from({ length: batches }, (_, t) => t * m * n);
    const product = <Q extends boolean>([x, y]: readonly HostArray[], [z]: readonly HostArray[], queued: Q) =>
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
        queued,
      );
    return maybeOffThread(
      threading,
      flops >= OFF_THREAD_FLOPS,
      (ins, outs) => product(ins, outs, false),
      (ins, outs) => product(ins, outs, true),
    );
  };
}
