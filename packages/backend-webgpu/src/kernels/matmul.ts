import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, wgslType } from '../shader.js';
import { unravelTo } from '../wgsl/workgroup.js';
import { type KernelFactory, read, write } from './kernel.js';
import { broadcastStrides } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;

/** Output tile (BM x BN), K step, and the 16 x 16 threads that each own a 4 x 4 block of it. */
// The usual shape for GPUs; on lavapipe, 8x8 blocks, 64-thread groups and K steps of 8 or 32
// measured no better (within the noise of a shared machine).
const RM = 4;
const RN = 4;
const TY = 16;
const TX = 16;
const BM = TY * RM;
const BN = TX * RN;
const BK = 16;
const THREADS = TX * TY;

/**
 * Batched matmul with workgroup-memory tiling and register blocking: a workgroup of 256 threads
 * computes a 64x64 tile of C, walking K in steps of 16. Each step stages a 64x16 slab of A and a
 * 16x64 slab of B in workgroup memory (4 elements per thread), then every thread does 16 steps of
 * a 4x4 outer product from there, so each value read from storage is used 64 times. A thread's
 * rows and columns are strided by 16 so neighbouring threads touch neighbouring words. Transposes
 * are strides and broadcast batches zero strides, so the key is only (dtype, batch rank); each
 * output still accumulates over k in order, as the reference does.
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
  const tilesM = Math.ceil(m / BM);
  const tilesN = Math.ceil(n / BN);
  // A(i, p) at aOff + i * P(6) + p * P(7); B(p, j) at bOff + p * P(8) + j * P(9).
  const params = [m, n, k, tilesM, tilesN, batches, ta ? 1 : ac, ta ? ac : 1, tb ? 1 : bc, tb ? bc : 1];
  params.push(...batchShape, ...aBatch, ...bBatch);
  const ty = wgslType(out.dtype);
  const zero = out.dtype === 'int32' ? '0' : '0.0';
  const body = `var<workgroup> As: array<${ty}, ${BM * BK}>;
var<workgroup> Bs: array<${ty}, ${BK * BN}>;
${ENTRY(THREADS)} {
  let w = gid(wid, nwg);
  let tiles = P(3u) * P(4u);
  if (w >= tiles * P(5u)) { return; }
  let batch = w / tiles;
  let row0 = ((w % tiles) / P(4u)) * ${BM}u;
  let col0 = (w % P(4u)) * ${BN}u;
  let ty = lid / ${TX}u;
  let tx = lid % ${TX}u;
  let M = P(0u);
  let N = P(1u);
  let K = P(2u);
${unravelTo('aOff', 'batch', rb, 10, 10 + rb)}
${unravelTo('bOff', 'batch', rb, 10, 10 + 2 * rb)}
  var acc: array<array<${ty}, ${RN}>, ${RM}>;
  for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = ${zero}; } }
  for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
    for (var q = 0u; q < ${(BM * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
      let ar = row0 + e / ${BK}u;
      let ak = k0 + e % ${BK}u;
      var av: ${ty} = ${zero};
      if (ar < M && ak < K) { av = ld0(aOff + ar * P(6u) + ak * P(7u)); }
      As[e] = av;
    }
    for (var q = 0u; q < ${(BN * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
      let bk = k0 + e / ${BN}u;
      let bc = col0 + e % ${BN}u;
      var bv: ${ty} = ${zero};
      if (bk < K && bc < N) { bv = ld1(bOff + bk * P(8u) + bc * P(9u)); }
      Bs[e] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var av: array<${ty}, ${RM}>;
      var bv: array<${ty}, ${RN}>;
      for (var i = 0u; i < ${RM}u; i++) { av[i] = As[(ty + ${TY}u * i) * ${BK}u + kk]; }
      for (var j = 0u; j < ${RN}u; j++) { bv[j] = Bs[kk * ${BN}u + tx + ${TX}u * j]; }
      for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = acc[i][j] + av[i] * bv[j]; } }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${RM}u; i++) {
    let row = row0 + ty + ${TY}u * i;
    for (var j = 0u; j < ${RN}u; j++) {
      let col = col0 + tx + ${TX}u * j;
      if (row < M && col < N) { st2((batch * M + row) * N + col, acc[i][j]); }
    }
  }
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
