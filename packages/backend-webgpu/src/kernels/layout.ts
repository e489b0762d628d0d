import { type ConcreteShape, type DType, normalizeAxis, sizeOf } from '@kiln/ir';
import type { Dispatch } from '../shader.js';
import { floatBits } from '../shader.js';
import { type KernelFactory, read, write } from './kernel.js';
import { broadcastStrides, contiguous, mapDispatch, mapExtra, rowMajor } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;

/** Moves elements: out[c] = in[base + sum(c[d] * strides[d])] over the output's shape. */
function gatherCopy(
  key: string,
  a: Parameters<KernelFactory<Attrs>>[0],
  base: number,
  strides: number[],
): Dispatch[] {
  const out = a.outputs[0]!;
  if (sizeOf(out.shape) === 0) return [];
  return [
    mapDispatch(
      `copy:${key}`,
      out.shape,
      [read(a.ins[0]!, out.dtype), write(a.outs[0]!, out.dtype)],
      [{ base, strides }, contiguous(out.shape)],
      '  st1(j1, ld0(j0));',
    ),
  ];
}

export const reshape: KernelFactory<Attrs> = (a) => {
  const n = sizeOf(a.outputs[0]!.shape);
  if (n === 0) return [];
  const flat = [n];
  return [
    mapDispatch(
      'copy:flat',
      flat,
      [read(a.ins[0]!, a.inputs[0]!.dtype), write(a.outs[0]!, a.outputs[0]!.dtype)],
      [contiguous(flat), contiguous(flat)],
      '  st1(j1, ld0(j0));',
    ),
  ];
};

export const transpose: KernelFactory<Attrs> = (a) => {
  const x = a.inputs[0]!.shape;
  const perm = (a.attrs.perm as readonly number[] | null) ?? x.map((_, i) => x.length - 1 - i);
  const own = rowMajor(x);
  return gatherCopy(
    'transpose',
    a,
    0,
    perm.map((p) => own[p]!),
  );
};

export const broadcastTo: KernelFactory<Attrs> = (a) =>
  gatherCopy('broadcast', a, 0, broadcastStrides(a.inputs[0]!.shape, a.outputs[0]!.shape));

export const slice: KernelFactory<Attrs> = (a) => {
  const own = rowMajor(a.inputs[0]!.shape);
  const begin = a.attrs.begin as readonly number[];
  return gatherCopy(
    'slice',
    a,
    begin.reduce((s, b, d) => s + b * own[d]!, 0),
    own,
  );
};

/** Each input is scattered into its band of the output: one dispatch per input. */
export const concat: KernelFactory<Attrs> = (a) => {
  const out = a.outputs[0]!;
  const axis = normalizeAxis(a.attrs.axis as number, out.shape.length, 'concat');
  const outStrides = rowMajor(out.shape);
  let offset = 0;
  const dispatches: Dispatch[] = [];
  a.inputs.forEach((t, k) => {
    if (sizeOf(t.shape) > 0) {
      dispatches.push(
        mapDispatch(
          'copy:scatter',
          t.shape,
          [read(a.ins[k]!, t.dtype), write(a.outs[0]!, out.dtype)],
          [contiguous(t.shape), { base: offset * outStrides[axis]!, strides: outStrides }],
          '  st1(j1, ld0(j0));',
        ),
      );
    }
    offset += t.shape[axis]!;
  });
  return dispatches;
};

/** A dtype's value as the u32 word a shader reads with P / Pi / Pf. */
export function valueBits(dtype: DType, x: number): number {
  if (dtype === 'float32') return floatBits(x);
  if (dtype === 'int32')
    return Math.trunc(Math.max(-2147483648, Math.min(2147483647, Number.isNaN(x) ? 0 : x))) >>> 0;
  return x !== 0 ? 1 : 0;
}

const fromBits = (dtype: DType, p: string) =>
  dtype === 'float32' ? `bitcast<f32>(${p})` : dtype === 'int32' ? `bitcast<i32>(${p})` : `(${p} != 0u)`;

/** Pad: fill the output with the value, then scatter the input into its interior. */
export const pad: KernelFactory<Attrs> = (a) => {
  const out = a.outputs[0]!;
  const x = a.inputs[0]!;
  if (sizeOf(out.shape) === 0) return [];
  const paddings = a.attrs.paddings as readonly (readonly [number, number])[];
  const outStrides = rowMajor(out.shape);
  const fill = mapDispatch(
    'fill',
    out.shape,
    [write(a.outs[0]!, out.dtype)],
    [contiguous(out.shape)],
    `  st0(j0, ${fromBits(out.dtype, mapExtra(out.shape.length, 1))});`,
    [valueBits(out.dtype, a.attrs.value as number)],
  );
  if (sizeOf(x.shape) === 0) return [fill];
  const base = paddings.reduce((s, [before], d) => s + before * outStrides[d]!, 0);
  return [
    fill,
    mapDispatch(
      'copy:scatter',
      x.shape,
      [read(a.ins[0]!, x.dtype), write(a.outs[0]!, out.dtype)],
      [contiguous(x.shape), { base, strides: outStrides }],
      '  st1(j1, ld0(j0));',
    ),
  ];
};

/** numpy's take: out[o, j, r] = params[o, idx[j], r], zero where the index is out of range. */
export const gather: KernelFactory<Attrs> = (a) => {
  const p = a.inputs[0]!;
  const idx = a.inputs[1]!;
  const out = a.outputs[0]!;
  if (sizeOf(out.shape) === 0) return [];
  const axis = normalizeAxis(a.attrs.axis as number, p.shape.length, 'gather');
  const outer = sizeOf(p.shape.slice(0, axis));
  const dim = p.shape[axis]!;
  const inner = sizeOf(p.shape.slice(axis + 1));
  const nIdx = sizeOf(idx.shape);
  const space: ConcreteShape = [outer, nIdx, inner];
  const zero = p.dtype === 'float32' ? '0.0' : p.dtype === 'int32' ? '0' : 'false';
  return [
    mapDispatch(
      'gather',
      space,
      [read(a.ins[0]!, p.dtype), read(a.ins[1]!, 'int32'), write(a.outs[0]!, out.dtype)],
      [{ base: 0, strides: [dim * inner, 0, 1] }, { base: 0, strides: [0, 1, 0] }, contiguous(space)],
      `  let k = ld1(j1);
  if (k < 0 || k >= i32(${mapExtra(3, 3)})) { st2(j2, ${zero}); } else { st2(j2, ld0(j0 + u32(k) * ${mapExtra(3, 3, 1)})); }`,
      [dim, inner],
    ),
  ];
};

export const oneHot: KernelFactory<Attrs> = (a) => {
  const out = a.outputs[0]!;
  const depth = a.attrs.depth as number;
  if (sizeOf(out.shape) === 0) return [];
  const n = sizeOf(a.inputs[0]!.shape);
  const space: ConcreteShape = [n, depth];
  const on = fromBits(out.dtype, mapExtra(2, 2));
  const off = fromBits(out.dtype, mapExtra(2, 2, 1));
  return [
    mapDispatch(
      'onehot',
      space,
      [read(a.ins[0]!, 'int32'), write(a.outs[0]!, out.dtype)],
      [{ base: 0, strides: [1, 0] }, contiguous(space)],
      `  st1(j1, select(${off}, ${on}, ld0(j0) == i32(i % ${mapExtra(2, 2, 2)})));`,
      [
        valueBits(out.dtype, a.attrs.onValue as number),
        valueBits(out.dtype, a.attrs.offValue as number),
        depth,
      ],
    ),
  ];
};
