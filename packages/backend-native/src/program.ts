import {
  type DType,
  type FusedAttrs,
  fusedSlotDTypes,
  type KernelFactory,
  type KernelNode,
  type OpName,
  parseFusedAttrs,
} from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import { GROUP_ELEMENTS, type Groups } from './groups.js';
import { BINARY, COPY, TO_BOOL, UNARY, WHERE } from './op-codes.js';
import { maybeOffThread, OFF_THREAD_ELEMENTS, type Threading } from './threading.js';
import { TINY_ELEMENTS, tinyKernel } from './tiny.js';

/**
 * Elementwise work as native programs (native/program.cc): a single op is a program of one step,
 * a fusion group a program of many, and both run in one pass over cache-sized blocks with each
 * input read through its broadcast strides. Programs cover float32 and bool values; one that
 * touches int32 is not native (the device declines the fused group, and single ops fall back to
 * the reference kernel).
 */

/** The ops a program can hold. */
export const PROGRAM_OPS: ReadonlySet<string> = new Set([
  ...Object.keys(UNARY),
  ...Object.keys(BINARY),
  'where',
  'cast',
]);

type Step = readonly [op: number, a: number, b: number, c: number];

/** The native step for `op` on these slots, or why there is none. */
function stepFor(op: string, args: readonly number[], castTo?: DType): Step | string {
  const [a = -1, b = -1, c = -1] = args;
  if (op === 'cast') {
    if (castTo === 'float32') return [COPY, a, -1, -1];
    if (castTo === 'bool') return [TO_BOOL, a, -1, -1];
    return `no native cast to ${castTo}`;
  }
  if (op === 'where') return [WHERE, a, b, c];
  const unary = UNARY[op as OpName];
  if (unary !== undefined) return [unary, a, -1, -1];
  const binary = BINARY[op as OpName];
  if (binary !== undefined) return [binary, a, b, -1];
  return `no native loop for ${op}`;
}

/** A program's code and the slot each output stores, or why it cannot run natively. */
export function compileProgram(attrs: FusedAttrs, inputs: readonly DType[]): { code: Int32Array } | string {
  const dtypes = fusedSlotDTypes(attrs, inputs);
  const int = dtypes.findIndex((d) => d !== 'float32' && d !== 'bool');
  if (int >= 0) return `slot ${int} is ${dtypes[int]} (native programs compute float32 and bool)`;
  const code: number[] = [];
  for (const step of attrs.program) {
    const native = stepFor(step[0], step[1], step[0] === 'cast' ? step[2] : undefined);
    if (typeof native === 'string') return native;
    code.push(...native);
  }
  return { code: Int32Array.from(code) };
}

/**
 * Each input's element strides over the output's shape (0 along the axes it broadcasts), merged as
 * `mergeAxes` does.
 */
export function broadcastLayout(
  outShape: readonly number[],
  inShapes: readonly (readonly number[])[],
): { shape: Float64Array; strides: Float64Array } {
  const rank = outShape.length;
  const per = inShapes.map((s) => {
    const strides = new Array<number>(rank).fill(0);
    let step = 1;
    for (let d = s.length - 1; d >= 0; d--) {
      const axis = rank - s.length + d;
      strides[axis] = s[d] === 1 && outShape[axis] !== 1 ? 0 : step;
      step *= s[d]!;
    }
    return strides;
  });
  return mergeAxes(outShape, per);
}

/**
 * The output's shape and each input's strides over it, with axes of one dropped and adjacent axes
 * merged where every input walks them as one: a same-shape operand becomes one axis of stride 1,
 * which the native loop reads in place.
 */
export function mergeAxes(
  outShape: readonly number[],
  per: readonly (readonly number[])[],
): { shape: Float64Array; strides: Float64Array } {
  const shape: number[] = [];
  const merged: number[][] = per.map(() => []);
  for (let d = 0; d < outShape.length; d++) {
    const n = outShape[d]!;
    if (n === 1) continue; // an axis of one moves nothing
    const last = shape.length - 1;
    if (last >= 0 && per.every((st, i) => merged[i]![last] === st[d]! * n)) {
      shape[last] = shape[last]! * n;
      per.forEach((st, i) => {
        merged[i]![last] = st[d]!;
      });
      continue;
    }
    shape.push(n);
    per.forEach((st, i) => merged[i]!.push(st[d]!));
  }
  if (shape.length === 0) {
    shape.push(1);
    merged.forEach((m) => m.push(0));
  }
  return { shape: Float64Array.from(shape), strides: Float64Array.from(merged.flat()) };
}

/**
 * A kernel running `code` (outputs storing `slots`) over the node's broadcast inputs, on the
 * device's threads when it is large, and off the calling thread when longer still. A large program
 * of several steps is offered to `groups` for a generated loop of its own.
 */
function programKernel(
  addon: NativeAddon,
  node: KernelNode<unknown>,
  code: Int32Array,
  slots: Int32Array,
  threading: Threading,
  groups?: Groups,
): ReturnType<KernelFactory<unknown>> {
  const { shape, strides } = broadcastLayout(
    node.outputs[0]!.shape as number[],
    node.inputs.map((t) => t.shape as number[]),
  );
  // Checked once here; each run then only checks the arrays it is given.
  const program = addon.createProgram(code, node.inputs.length, strides, shape, slots);
  const elements = shape.reduce((n, d) => n * d, 1);
  // Each input's stride along the row: 0 (one value for the row) or 1 (read along it), as
  // broadcasting makes them; a generated loop reads no other.
  const rank = shape.length;
  const along = node.inputs.map((_, i) => strides[i * rank + rank - 1]);
  const steps = code.length / 4;
  if (groups && steps >= 2 && elements >= GROUP_ELEMENTS && along.every((s) => s === 0 || s === 1)) {
    groups.offer(program, {
      code,
      inputs: node.inputs.map((t, i) => ({
        along: along[i] === 0 ? 'one' : 'row',
        bool: t.dtype === 'bool',
      })),
      outputs: [...slots].map((slot, k) => ({ slot, bool: node.outputs[k]!.dtype === 'bool' })),
    });
  }
  const { threads } = threading;
  return maybeOffThread(
    threading,
    elements >= OFF_THREAD_ELEMENTS,
    (ins, outs) => addon.runProgram(program, ins as never, outs as never, threads),
    (ins, outs) => addon.runProgram(program, ins as never, outs as never, threads, true),
  );
}

/**
 * A fused group as one native program, with a generated loop of its own once `groups` has made it;
 * the device declines the groups this cannot run.
 */
export function fusedKernel(
  addon: NativeAddon,
  threading: Threading,
  groups?: Groups,
): KernelFactory<FusedAttrs> {
  return (node) => {
    const attrs = parseFusedAttrs(node.attrs as unknown as Record<string, unknown>);
    const program = compileProgram(
      attrs,
      node.inputs.map((t) => t.dtype),
    );
    if (typeof program === 'string') throw new Error(`fused: ${program}`);
    return programKernel(
      addon,
      node as KernelNode<unknown>,
      program.code,
      Int32Array.from(attrs.outputs),
      threading,
      groups,
    );
  };
}

/** Why a fused group cannot run as a native program, if it cannot. */
export function declineFused(
  attrs: Readonly<Record<string, unknown>>,
  inputs: readonly DType[],
): string | undefined {
  const parsed = parseFusedAttrs(attrs);
  const program = compileProgram(parsed, inputs);
  return typeof program === 'string' ? `the native program cannot run it: ${program}` : undefined;
}

/**
 * A single elementwise op as a one-step program, where its values are float32 or bool; anything
 * else (int32) runs in `fallback`.
 */
export function elementwiseKernel(
  addon: NativeAddon,
  op: string,
  fallback: KernelFactory<unknown>,
  threading: Threading,
): KernelFactory<unknown> {
  return (node) => {
    const args = node.inputs.map((_, i) => i);
    const attrs: FusedAttrs = {
      program: [op === 'cast' ? ['cast', args, (node.attrs as { dtype: DType }).dtype] : [op, args]] as never,
      outputs: [node.inputs.length],
    };
    const program = compileProgram(
      attrs,
      node.inputs.map((t) => t.dtype),
    );
    if (typeof program === 'string') return fallback(node);
    const outShape = node.outputs[0]!.shape as number[];
    if (
      outShape.reduce((n, d) => n * d, 1) <= TINY_ELEMENTS &&
      node.inputs.every((t) => t.dtype === 'float32')
    ) {
      const { shape, strides } = broadcastLayout(
        outShape,
        node.inputs.map((t) => t.shape as number[]),
      );
      const tiny = tinyKernel(op, shape, strides);
      if (tiny) return tiny;
    }
    return programKernel(addon, node, program.code, Int32Array.of(node.inputs.length), threading);
  };
}
