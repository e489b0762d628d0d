import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, wgslType } from '../shader.js';
import { unravelTo } from '../wgsl/workgroup.js';
import { type KernelFactory, read, write } from './kernel.js';
import { broadcastStrides } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;
const T = 16;

/**
 * Batched matmul with workgroup-memory tiling: a workgroup computes a 16x16 tile of C, walking K
 * in 16-wide steps; each step the 256 threads stage one element of A and one of B in workgroup
 * memory, then every thread does 16 multiply-adds from there, so each element of A and B is read
 * from storage K/16 times fewer. Transposes are strides and broadcast batches are zero strides, so
 * the key is only (dtype, batch rank).
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
  const k = ta ? ar : ac;
  const batchShape = out.shape.slice(0, r - 2);
  const rb = batchShape.length;
  const batches = sizeOf(batchShape);
  const aBatch = broadcastStrides(A!.shape.slice(0, -2), batchShape).map((s) => s * ar * ac);
  const bBatch = broadcastStrides(B!.shape.slice(0, -2), batchShape).map((s) => s * br * bc);
  const tilesM = Math.ceil(m / T);
  const tilesN = Math.ceil(n / T);
  // A(i, p) at aOff + i * P(6) + p * P(7); B(p, j) at bOff + p * P(8) + j * P(9).
  const params = [m, n, k, tilesM, tilesN, batches, ta ? 1 : ac, ta ? ac : 1, tb ? 1 : bc, tb ? bc : 1];
  params.push(...batchShape, ...aBatch, ...bBatch);
  const ty = wgslType(out.dtype);
  const zero = out.dtype === 'int32' ? '0' : '0.0';
  const body = `var<workgroup> As: array<${ty}, ${T * T}>;
var<workgroup> Bs: array<${ty}, ${T * T}>;
${ENTRY(T * T)} {
  let w = gid(wid, nwg);
  let tiles = P(3u) * P(4u);
  if (w >= tiles * P(5u)) { return; }
  let batch = w / tiles;
  let tm = (w % tiles) / P(4u);
  let tn = w % P(4u);
  let ty = lid / ${T}u;
  let tx = lid % ${T}u;
  let row = tm * ${T}u + ty;
  let col = tn * ${T}u + tx;
  let M = P(0u);
  let N = P(1u);
  let K = P(2u);
${unravelTo('aOff', 'batch', rb, 10, 10 + rb)}
${unravelTo('bOff', 'batch', rb, 10, 10 + 2 * rb)}
  var acc: ${ty} = ${zero};
  for (var k0 = 0u; k0 < K; k0 = k0 + ${T}u) {
    let ak = k0 + tx;
    let bk = k0 + ty;
    As[lid] = select(${zero}, ld0(aOff + row * P(6u) + ak * P(7u)), row < M && ak < K);
    Bs[lid] = select(${zero}, ld1(bOff + bk * P(8u) + col * P(9u)), bk < K && col < N);
    workgroupBarrier();
    for (var q = 0u; q < ${T}u; q = q + 1u) { acc = acc + As[ty * ${T}u + q] * Bs[q * ${T}u + tx]; }
    workgroupBarrier();
  }
  if (row < M && col < N) { st2((batch * M + row) * N + col, acc); }
}`;
  return [
    {
      key: `matmul:b${rb}`,
      body,
      tensors: [read(a.ins[0]!, A!.dtype), read(a.ins[1]!, B!.dtype), write(a.outs[0]!, out.dtype)],
      params,
      workgroups: tilesM * tilesN * batches,
    },
  ];
};
