import { sizeOf } from '@kiln/ir';
import type { Dispatch } from '../shader.js';
import { unravelTo } from '../wgsl/workgroup.js';
import { GEMM_LOADER_PARAMS, gemmDispatch } from './gemm.js';
import { type KernelFactory, read, write } from './kernel.js';
import { broadcastStrides } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;

/**
 * Batched matmul on the tiled GEMM kernel. Transposes are strides (and pick the staging order that
 * reads memory contiguously); broadcast batch dimensions are zero strides. The key holds the batch
 * rank, never a size. The loaders' params: A's row and k strides, B's k and column strides, then
 * the batch shape and both operands' batch strides.
 */
export const matmul: KernelFactory<Attrs> = (a): Dispatch[] => {
  const [A, B] = a.inputs as [(typeof a.inputs)[0], (typeof a.inputs)[0]];
  const out = a.outputs[0]!;
  if (sizeOf(out.shape) === 0) return [];
  const ta = a.attrs.transposeA === true;
  const tb = a.attrs.transposeB === true;
  const r = out.shape.length;
  const [m, n] = [out.shape[r - 2]!, out.shape[r - 1]!];
  const [ar, ac] = A!.shape.slice(-2) as [number, number];
  const [br, bc] = B!.shape.slice(-2) as [number, number];
  const batchShape = out.shape.slice(0, r - 2);
  const rb = batchShape.length;
  const aBatch = broadcastStrides(A!.shape.slice(0, -2), batchShape).map((s) => s * ar * ac);
  const bBatch = broadcastStrides(B!.shape.slice(0, -2), batchShape).map((s) => s * br * bc);
  const ty = out.dtype === 'int32' ? 'i32' : 'f32';
  const p = GEMM_LOADER_PARAMS;
  const shape = p + 4;
  const loaders = `fn loadA(batch: u32, r: u32, k: u32) -> ${ty} {
${unravelTo('off', 'batch', rb, shape, shape + rb)}
  return ld0(off + r * P(${p}u) + k * P(${p + 1}u));
}
fn loadB(batch: u32, k: u32, c: u32) -> ${ty} {
${unravelTo('off', 'batch', rb, shape, shape + 2 * rb)}
  return ld1(off + k * P(${p + 2}u) + c * P(${p + 3}u));
}`;
  return [
    gemmDispatch({
      key: `matmul:b${rb}`,
      dtype: out.dtype,
      m,
      n,
      k: ta ? ar : ac,
      batches: sizeOf(batchShape),
      loaders,
      aAlongRows: ta,
      bAlongK: tb,
      extra: [ta ? 1 : ac, ta ? ac : 1, tb ? 1 : bc, tb ? bc : 1, ...batchShape, ...aBatch, ...bBatch],
      tensors: [read(a.ins[0]!, A!.dtype), read(a.ins[1]!, B!.dtype), write(a.outs[0]!, out.dtype)],
    }),
  ];
};
