import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, wgslType } from '../shader.js';
import { unravelTo } from '../wgsl/workgroup.js';
import { type KernelFactory, read, write } from './kernel.js';
import { broadcastStrides } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;

/**
 * Output tile (BM x BN = 128 x 128), K step, and the 16 x 16 threads that each own an 8 x 8 block.
 * Measured on lavapipe (median of 7, 128x784x256, 256^3 and 512^3): 1.6x faster than 4 x 4 blocks
 * of a 64 x 64 tile and than 64-thread groups; K steps of 32 were no clearly better and would need
 * 32 KiB of workgroup memory, where 16 KiB is what every WebGPU adapter guarantees.
 */
const RM = 8;
const RN = 8;
const TY = 16;
const TX = 16;
const BM = TY * RM;
const BN = TX * RN;
const BK = 16;
const THREADS = TX * TY;

// The 8x8 block is unrolled into scalar variables: a private array indexed in a loop may live in
// memory rather than registers (it does on lavapipe), which costs more than the arithmetic.
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const rows = (f: (i: number) => string) => range(RM).map(f).join('\n');
const cols = (f: (j: number) => string) => range(RN).map(f).join('\n');
const grid = (f: (i: number, j: number) => string) =>
  range(RM)
    .flatMap((i) => range(RN).map((j) => f(i, j)))
    .join('\n');

/**
 * Batched matmul with workgroup-memory tiling and register blocking: a workgroup of 256 threads
 * computes a 128x128 tile of C, walking K in steps of 16. Each step stages a 128x16 slab of A and a
 * 16x128 slab of B in workgroup memory (8 elements each per thread), then every thread does 16 steps
 * of an 8x8 outer product from there, so each value read from storage is used 128 times. A thread's
 * rows and columns are strided by 16 so neighbouring threads touch neighbouring words, and the
 * slabs are loaded along whichever axis is contiguous in memory (so the key holds the transpose
 * flags). Broadcast batches are zero strides, so the key holds no size; each
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
${grid((i, j) => `  var c${i}_${j}: ${ty} = ${zero};`)}
  for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
    for (var q = 0u; q < ${(BM * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
${
  ta
    ? `      let r = e % ${BM}u;
      let kq = e / ${BM}u;`
    : `      let r = e / ${BK}u;
      let kq = e % ${BK}u;`
}
      let ar = row0 + r;
      let ak = k0 + kq;
      var av: ${ty} = ${zero};
      if (ar < M && ak < K) { av = ld0(aOff + ar * P(6u) + ak * P(7u)); }
      As[r * ${BK}u + kq] = av;
    }
    for (var q = 0u; q < ${(BN * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
${
  tb
    ? `      let kq = e % ${BK}u;
      let c = e / ${BK}u;`
    : `      let kq = e / ${BN}u;
      let c = e % ${BN}u;`
}
      let bk = k0 + kq;
      let bc = col0 + c;
      var bv: ${ty} = ${zero};
      if (bk < K && bc < N) { bv = ld1(bOff + bk * P(8u) + bc * P(9u)); }
      Bs[kq * ${BN}u + c] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${rows((i) => `      let a${i} = As[(ty + ${TY * i}u) * ${BK}u + kk];`)}
${cols((j) => `      let b${j} = Bs[kk * ${BN}u + tx + ${TX * j}u];`)}
${grid((i, j) => `      c${i}_${j} = c${i}_${j} + a${i} * b${j};`)}
    }
    workgroupBarrier();
  }
${grid((i, j) => `  if (row0 + ty + ${TY * i}u < M && col0 + tx + ${TX * j}u < N) { st2((batch * M + row0 + ty + ${TY * i}u) * N + col0 + tx + ${TX * j}u, c${i}_${j}); }`)}
}`;
  return [
    {
      key: `matmul:b${rb}:${ta ? 't' : 'n'}${tb ? 't' : 'n'}`,
      body,
      tensors: [read(a.ins[0]!, A!.dtype), read(a.ins[1]!, B!.dtype), write(a.outs[0]!, out.dtype)],
      params,
      workgroups: tilesM * tilesN * batches,
    },
  ];
};
