import { byteSizeOf, type DType, fusedSlotDTypes, KilnError, parseFusedAttrs, sizeOf } from '@kiln/ir';
import type { Dispatch, TensorRef } from '../shader.js';
import { copyBytes } from './copy.js';
import type { KernelArgs, KernelFactory } from './kernel.js';
import { read, write } from './kernel.js';
import { broadcastStrides, contiguous, mapDispatch } from './map.js';
import { type ElementwiseOp, hasScalarExpr, scalarExpr } from './scalar-ops.js';

const short = (d: DType) => (d === 'float32' ? 'f' : d === 'int32' ? 'i' : 'b');

/** One elementwise op over broadcast inputs: a map kernel whose statement is the op's WGSL. */
export function elementwise(op: ElementwiseOp): KernelFactory<Readonly<Record<string, unknown>>> {
  return (a) => {
    const out = a.outputs[0]!;
    if (sizeOf(out.shape) === 0) return [];
    const n = a.inputs.length;
    const castTo = op === 'cast' ? (a.attrs.dtype as DType) : undefined;
    const expr = scalarExpr(
      op,
      a.inputs.map((_, k) => `ld${k}(j${k})`),
      a.inputs.map((t) => t.dtype),
      castTo,
    );
    return [
      mapDispatch(
        `ew:${op}:${castTo ?? ''}`,
        out.shape,
        [...a.inputs.map((t, k) => read(a.ins[k]!, t.dtype)), write(a.outs[0]!, out.dtype)],
        [
          ...a.inputs.map((t) => ({ base: 0, strides: broadcastStrides(t.shape, out.shape) })),
          contiguous(out.shape),
        ],
        `  st${n}(j${n}, ${expr});`,
      ),
    ];
  };
}

/**
 * A fusion group as ONE generated shader: each input loaded once at its broadcast index, each step
 * a `let` of the op's WGSL (rounded to its dtype as a stored value would be), each output stored.
 * The key is the program itself, so equal groups share a pipeline whatever their shapes.
 */
export const fused: KernelFactory<Readonly<Record<string, unknown>>> = (
  a: KernelArgs<Readonly<Record<string, unknown>>>,
): Dispatch[] => {
  const shape = a.outputs[0]!.shape;
  if (sizeOf(shape) === 0) return [];
  const n = a.inputs.length;
  const attrs = parseFusedAttrs(a.attrs, 'webgpu fused');
  const dtypes = fusedSlotDTypes(
    attrs,
    a.inputs.map((t) => t.dtype),
  );
  const { program, outputs } = attrs;
  const { ins, staging } = stageInputs(a);
  let body = '';
  a.inputs.forEach((_, k) => {
    body += `  let s${k} = ld${k}(j${k});\n`;
  });
  program.forEach((step, k) => {
    const [op, args] = step;
    // The device declines groups naming an op without an expression (see supports): unreachable.
    if (!hasScalarExpr(op)) throw new KilnError('unsupported', `fused: no WGSL expression for ${op}`);
    const castTo = step[0] === 'cast' ? step[2] : undefined;
    const expr = scalarExpr(
      op,
      args.map((s) => `s${s}`),
      args.map((s) => dtypes[s]!),
      castTo,
    );
    body += `  let s${n + k} = ${expr};\n`;
  });
  outputs.forEach((slot, o) => {
    body += `  st${n + o}(j${n + o}, s${slot});\n`;
  });
  const key = `fused:${a.inputs.map((t) => short(t.dtype)).join('')}:${JSON.stringify(program)}:${outputs.join(',')}`;
  return [
    ...staging,
    mapDispatch(
      key,
      shape,
      [
        ...a.inputs.map((t, k) => read(ins[k]!, t.dtype)),
        ...a.outputs.map((t, o) => write(a.outs[o]!, t.dtype)),
      ],
      [
        ...a.inputs.map((t) => ({ base: 0, strides: broadcastStrides(t.shape, shape) })),
        ...a.outputs.map(() => contiguous(shape)),
      ],
      body,
    ),
  ];
};

/**
 * Fusion groups with more inputs than a portable shader may bind (WebGPU guarantees 8 storage
 * buffers per stage) read them from one node-private staging buffer instead: each input is copied
 * there first, at a word-aligned offset, by its own small dispatch.
 */
export const MAX_DIRECT_INPUTS = 6;

function stageInputs(a: KernelArgs<Readonly<Record<string, unknown>>>): {
  ins: readonly TensorRef[];
  staging: Dispatch[];
} {
  if (a.inputs.length <= MAX_DIRECT_INPUTS) return { ins: a.ins, staging: [] };
  const offsets: number[] = [];
  let total = 0;
  for (const t of a.inputs) {
    offsets.push(total);
    total += Math.ceil(byteSizeOf(t) / 4) * 4;
  }
  const temp = a.temp(total);
  const ins: TensorRef[] = [];
  const staging: Dispatch[] = [];
  a.inputs.forEach((t, k) => {
    const at = { ...temp, byteOffset: offsets[k]! } as TensorRef;
    ins.push(at);
    if (byteSizeOf(t) > 0) staging.push(copyBytes(a.ins[k]!, at, byteSizeOf(t)));
  });
  return { ins, staging };
}
