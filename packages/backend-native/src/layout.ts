import { type KernelFactory, type KernelFn, stridesOf } from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import { COPY } from './op-codes.js';
import { mergeAxes } from './program.js';
import { maybeOffThread, OFF_THREAD_ELEMENTS, type Threading } from './threading.js';

/**
 * Layout ops move elements without arithmetic: transpose, broadcastTo and slice are one native
 * copy program each, the input read through permuted, broadcast or offset strides (concat is
 * @kiln/ir's hostConcat). Values move as bits: int32 goes through the same float32 copy loop as a view of the
 * same bytes (a move never changes a bit pattern), bool as bytes.
 */

type HostArray = Parameters<KernelFn>[0][number];

/** The same bytes as a Float32Array where they hold int32, so the float copy loop moves them. */
const asBits = (a: HostArray): Float32Array | Uint8Array =>
  a instanceof Int32Array
    ? new Float32Array(a.buffer, a.byteOffset, a.length)
    : (a as Float32Array | Uint8Array);

const COPY_CODE = Int32Array.of(COPY, 0, -1, -1);
const COPY_SLOT = Int32Array.of(1);

/**
 * Output element i reads input element offset + sum(index_d * strides[d]); a large copy on up to
 * `threads` threads.
 */
function stridedCopy(
  addon: NativeAddon,
  outShape: readonly number[],
  strides: readonly number[],
  offset: number,
  threading: Threading,
): KernelFn {
  const layout = mergeAxes(outShape, [strides]);
  const program = addon.createProgram(COPY_CODE, 1, layout.strides, layout.shape, COPY_SLOT);
  const { threads } = threading;
  return maybeOffThread(
    threading,
    outShape.reduce((n, d) => n * d, 1) >= OFF_THREAD_ELEMENTS,
    ([x], [out]) => addon.runProgram(program, [asBits(x!).subarray(offset)], [asBits(out!)], threads),
    ([x], [out]) => addon.runProgram(program, [asBits(x!).subarray(offset)], [asBits(out!)], threads, true),
  );
}

export function transposeKernel(
  addon: NativeAddon,
  threading: Threading,
): KernelFactory<{ perm: readonly number[] | null }> {
  return (node) => {
    const shape = node.inputs[0]!.shape;
    const st = stridesOf(shape);
    // No permutation given: the axes reversed, as numpy does.
    const perm = node.attrs.perm ?? shape.map((_, d) => shape.length - 1 - d);
    return stridedCopy(
      addon,
      node.outputs[0]!.shape,
      perm.map((a) => st[a]!),
      0,
      threading,
    );
  };
}

export function broadcastToKernel(addon: NativeAddon, threading: Threading): KernelFactory<unknown> {
  return (node) => {
    const inShape = node.inputs[0]!.shape;
    const outShape = node.outputs[0]!.shape;
    const st = stridesOf(inShape);
    const lead = outShape.length - inShape.length;
    const strides = outShape.map((n, d) =>
      d < lead || (inShape[d - lead] === 1 && n !== 1) ? 0 : st[d - lead]!,
    );
    return stridedCopy(addon, outShape, strides, 0, threading);
  };
}

export function sliceKernel(
  addon: NativeAddon,
  threading: Threading,
): KernelFactory<{ begin: readonly number[] }> {
  return (node) => {
    const st = stridesOf(node.inputs[0]!.shape);
    const offset = node.attrs.begin.reduce((n, b, d) => n + b * st[d]!, 0);
    return stridedCopy(addon, node.outputs[0]!.shape, st, offset, threading);
  };
}
