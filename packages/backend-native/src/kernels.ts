import {
  broadcastIndex,
  type HostArray,
  hostConcat,
  type KernelFactory,
  type KernelTable,
  normalizeAxes,
  normalizeAxis,
  type OpName,
  REFERENCE_KERNELS,
  referenceKernel,
} from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import type { Groups } from './groups.js';
import { broadcastToKernel, sliceKernel, transposeKernel } from './layout.js';
import { elementwiseKernel, fusedKernel, PROGRAM_OPS } from './program.js';
import { maybeOffThread, OFF_THREAD_ELEMENTS, OFF_THREAD_FLOPS, type Threading } from './threading.js';
import { convKernel, poolKernel } from './windows.js';

/**
 * The native device's kernel table: oneDNN and OpenBLAS for matmul (see matmulLibrary), oneDNN for
 * convolutions and their gradients, native loops for pooling, native programs for elementwise ops
 * and fusion groups (program.ts; with `groups`, large fusion groups get generated loops of their
 * own), native reductions over adjacent axes, softmax and logSoftmax as one native kernel each,
 * layout ops as native copies (layout.ts), over the reference kernels for every other primitive
 * (correct, and slow: the next kernels to move to C++). A case a native kernel does not cover
 * (int32, reduced axes that are not adjacent) falls back to the reference kernel of the same op,
 * decided once, when the node is compiled.
 */
export function nativeKernels(addon: NativeAddon, threading: Threading, groups?: Groups): KernelTable {
  const elementwise = Object.fromEntries(
    [...PROGRAM_OPS].map((op) => [
      op,
      elementwiseKernel(addon, op, referenceKernel(op as OpName), threading),
    ]),
  );
  return {
    ...REFERENCE_KERNELS,
    ...elementwise,
    fused: fusedKernel(addon, threading, groups) as KernelFactory<unknown>,
    matmul: matmul(addon, threading),
    sum: reduction(addon, 'sum', 0),
    mean: reduction(addon, 'mean', 1),
    prod: reduction(addon, 'prod', 2),
    max: reduction(addon, 'max', 3),
    min: reduction(addon, 'min', 4),
    softmax: softmax(addon, false, threading) as KernelFactory<unknown>,
    logSoftmax: softmax(addon, true, threading) as KernelFactory<unknown>,
    conv2d: convKernel(addon, 'conv2d', threading) as KernelFactory<unknown>,
    conv2dBackpropInput: convKernel(addon, 'conv2dBackpropInput', threading) as KernelFactory<unknown>,
    conv2dBackpropFilter: convKernel(addon, 'conv2dBackpropFilter', threading) as KernelFactory<unknown>,
    maxPool: poolKernel(addon, 'maxPool') as KernelFactory<unknown>,
    avgPool: poolKernel(addon, 'avgPool') as KernelFactory<unknown>,
    maxPoolGrad: poolKernel(addon, 'maxPoolGrad') as KernelFactory<unknown>,
    avgPoolGrad: poolKernel(addon, 'avgPoolGrad') as KernelFactory<unknown>,
    transpose: transposeKernel(addon, threading) as KernelFactory<unknown>,
    broadcastTo: broadcastToKernel(addon, threading),
    slice: sliceKernel(addon, threading) as KernelFactory<unknown>,
    concat: hostConcat as KernelFactory<unknown>,
    // The bytes stay as they are; only the shape changes.
    reshape: () => (ins, outs) => outs[0]!.set(ins[0]! as never),
  };
}

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

/** The node's oneDNN primitive, or undefined where oneDNN cannot make one (OpenBLAS runs it then). */
function onednnMatmul(
  addon: NativeAddon,
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): object | undefined {
  try {
    return addon.createMatmul(
      Float64Array.from(a),
      Float64Array.from(b),
      Float64Array.from(out),
      transposeA,
      transposeB,
    );
  } catch {
    return undefined;
  }
}

function matmul(
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
    const r = out.length;
    const [m, n] = [out[r - 2]!, out[r - 1]!];
    const k = transposeA ? a.shape[a.shape.length - 2]! : a.shape[a.shape.length - 1]!;
    const batchShape = out.slice(0, r - 2);
    const batches = batchShape.reduce((x, y) => x * y, 1);
    const flops = 2 * batches * m * n * k;
    const worth = flops >= OFF_THREAD_FLOPS;
    const { threads } = threading;
    const primitive =
      matmulLibrary(addon, flops) === 'onednn'
        ? onednnMatmul(addon, a.shape, b.shape, out, transposeA, transposeB)
        : undefined;
    if (primitive) {
      const run = <Q extends boolean>([x, y]: readonly HostArray[], [z]: readonly HostArray[], queued: Q) =>
        addon.runMatmul(primitive, x as Float32Array, y as Float32Array, z as Float32Array, threads, queued);
      return maybeOffThread(
        threading,
        worth,
        (ins, outs) => run(ins, outs, false),
        (ins, outs) => run(ins, outs, true),
      );
    }
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
      worth,
      (ins, outs) => product(ins, outs, false),
      (ins, outs) => product(ins, outs, true),
    );
  };
}

/**
 * softmax and logSoftmax as one native kernel (native/softmax.cc): three passes over each lane
 * with a vectorized exponential, where the composite's expansion makes five over its primitives.
 */
function softmax(addon: NativeAddon, log: boolean, threading: Threading): KernelFactory<{ axis: number }> {
  return (node) => {
    const shape = node.inputs[0]!.shape;
    const axis = normalizeAxis(node.attrs.axis, shape.length, log ? 'logSoftmax' : 'softmax');
    const size = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
    const [outer, n, inner] = [size(shape.slice(0, axis)), shape[axis]!, size(shape.slice(axis + 1))];
    const { threads } = threading;
    const run = <Q extends boolean>([x]: readonly HostArray[], [out]: readonly HostArray[], queued: Q) =>
      addon.softmaxF32(x as Float32Array, outer, n, inner, log, out as Float32Array, threads, queued);
    return maybeOffThread(
      threading,
      size(shape) >= OFF_THREAD_ELEMENTS,
      (ins, outs) => run(ins, outs, false),
      (ins, outs) => run(ins, outs, true),
    );
  };
}

function reduction(
  addon: NativeAddon,
  op: 'sum' | 'mean' | 'prod' | 'max' | 'min',
  kind: number,
): KernelFactory<{ axes: readonly number[] | null; keepDims: boolean }> {
  const fallback = referenceKernel(op);
  return (node) => {
    const x = node.inputs[0]!;
    const shape = x.shape as number[];
    const axes = normalizeAxes(node.attrs.axes, shape.length, op).sort((a, b) => a - b);
    // One run of adjacent axes: the input is [outer, reduced, inner] and the output [outer, inner].
    const adjacent = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
    if (x.dtype !== 'float32' || !adjacent) return fallback(node);
    const product = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
    const first = axes[0] ?? shape.length;
    const last = axes.at(-1) ?? shape.length - 1;
    const outer = product(shape.slice(0, first));
    const reduced = product(axes.map((a) => shape[a]!));
    const inner = product(shape.slice(last + 1));
    return ([input], [output]) =>
      addon.reduceF32(kind, input as Float32Array, outer, reduced, inner, output as Float32Array);
  };
}
