import { type HostArray, type KernelFactory, type WindowAttrs, windowGeometry } from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import { maybeOffThread, OFF_THREAD_FLOPS, type Threading } from './threading.js';

/**
 * Convolutions on oneDNN and pooling in native loops (native/conv.cc, native/pool.cc): the
 * geometry of each node is worked out here, once, when it is compiled; the native side checks
 * every array against it on each call.
 */

const product = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);

/** The padding after each spatial axis that gives exactly `out` windows (oneDNN wants both ends). */
const padAfter = (size: number, k: number, stride: number, dilation: number, out: number, before: number) =>
  Math.max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size - before);

type ConvRole = 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter';
const CONV_KIND: Record<ConvRole, number> = { conv2d: 0, conv2dBackpropInput: 1, conv2dBackpropFilter: 2 };

/** A convolution node (or one of its gradients) as one oneDNN primitive, made when it compiles. */
export function convKernel(
  addon: NativeAddon,
  op: ConvRole,
  threading: Threading,
): KernelFactory<WindowAttrs> {
  return (node) => {
    const [a, b] = node.inputs.map((t) => t.shape as number[]) as [number[], number[]];
    const out = node.outputs[0]!.shape as number[];
    // Which operand is which: x [n, h, w, c], filter [kh, kw, c, f], y [n, oh, ow, f].
    const [x, filter, y] =
      op === 'conv2d' ? [a, b, out] : op === 'conv2dBackpropInput' ? [out, b, a] : [a, out, b];
    const [n, h, w, c] = x as [number, number, number, number];
    const [kh, kw, , f] = filter as [number, number, number, number];
    const [, oh, ow] = y as [number, number, number, number];
    const [sh, sw] = node.attrs.strides as [number, number];
    const [dh, dw] = node.attrs.dilations as [number, number];
    const lengths = [product(a), product(b), product(out)];
    // Nothing to convolve (an empty batch or image): the result is empty, or zero for a filter.
    if ([x, filter, y].some((s) => product(s) === 0)) return (_, [o]) => void o!.fill(0);
    const g = windowGeometry(h, w, kh, kw, node.attrs, op);
    const handle = addon.createConv(
      CONV_KIND[op],
      Float64Array.of(
        n,
        h,
        w,
        c,
        kh,
        kw,
        f,
        oh,
        ow,
        sh,
        sw,
        dh,
        dw,
        g.padTop,
        padAfter(h, kh, sh, dh, oh, g.padTop),
        g.padLeft,
        padAfter(w, kw, sw, dw, ow, g.padLeft),
      ),
    );
    const { threads } = threading;
    // Every output element is a dot product of a window: kh * kw * c multiply-adds.
    const flops = 2 * n * oh * ow * f * kh * kw * c;
    const convolve = <Q extends boolean>(
      [p, q]: readonly HostArray[],
      [o]: readonly HostArray[],
      queued: Q,
    ) =>
      addon.runConv(
        handle,
        p as Float32Array,
        q as Float32Array,
        o as Float32Array,
        lengths[0]!,
        lengths[1]!,
        lengths[2]!,
        threads,
        queued,
      );
    return maybeOffThread(
      threading,
      flops >= OFF_THREAD_FLOPS,
      (ins, outs) => convolve(ins, outs, false),
      (ins, outs) => convolve(ins, outs, true),
    );
  };
}

interface PoolAttrs {
  readonly windowSize: readonly number[];
  readonly strides: readonly number[];
  readonly padding: string;
}

type PoolRole = 'maxPool' | 'avgPool' | 'maxPoolGrad' | 'avgPoolGrad';
const POOL_KIND: Record<PoolRole, number> = { maxPool: 0, avgPool: 1, maxPoolGrad: 2, avgPoolGrad: 3 };

/** A pooling node (or its gradient) as one native loop over its clipped NHWC windows. */
export function poolKernel(addon: NativeAddon, op: PoolRole): KernelFactory<PoolAttrs> {
  return (node) => {
    // The pooled input: the output of avgPoolGrad, the first operand of the others.
    const input = (op === 'avgPoolGrad' ? node.outputs[0]! : node.inputs[0]!).shape as number[];
    const [n, h, w, c] = input as [number, number, number, number];
    const [kh, kw] = node.attrs.windowSize as [number, number];
    const [sh, sw] = node.attrs.strides as [number, number];
    const g = windowGeometry(h, w, kh, kw, { ...node.attrs, pads: [], dilations: [1, 1] }, op);
    const clip = (out: number, stride: number, pad: number, k: number, size: number) => {
      const start = new Int32Array(out);
      const end = new Int32Array(out);
      for (let o = 0; o < out; o++) {
        start[o] = Math.max(0, o * stride - pad);
        end[o] = Math.min(size, o * stride - pad + k);
      }
      return [start, end] as const;
    };
    const [yStart, yEnd] = clip(g.outH, sh, g.padTop, kh, h);
    const [xStart, xEnd] = clip(g.outW, sw, g.padLeft, kw, w);
    const sizes = Float64Array.of(n, h, w, c, g.outH, g.outW);
    const none = new Float32Array(0);
    const kind = POOL_KIND[op];
    return (ins, [o]) => {
      const [x, dy] =
        op === 'maxPoolGrad' ? [ins[0]!, ins[2]!] : op === 'avgPoolGrad' ? [none, ins[0]!] : [ins[0]!, none];
      addon.poolF32(
        kind,
        sizes,
        yStart,
        yEnd,
        xStart,
        xEnd,
        x as Float32Array,
        dy as Float32Array,
        o as Float32Array,
      );
    };
  };
}
