import {
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
import { fusedMatmulKernel } from './fused-matmul.js';
import type { Groups } from './groups.js';
import { broadcastToKernel, sliceKernel, transposeKernel } from './layout.js';
import { matmulKernel } from './matmul.js';
import { elementwiseKernel, fusedKernel, PROGRAM_OPS } from './program.js';
import { maybeOffThread, OFF_THREAD_ELEMENTS, type Threading } from './threading.js';
import { convKernel, poolKernel } from './windows.js';

/**
 * The native device's kernel table: oneDNN and OpenBLAS for matmul (see matmulLibrary) and for
 * products with their epilogues (fused-matmul.ts), oneDNN for
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
    matmul: matmulKernel(addon, threading),
    fusedMatmul: fusedMatmulKernel(addon, threading, groups) as KernelFactory<unknown>,
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
