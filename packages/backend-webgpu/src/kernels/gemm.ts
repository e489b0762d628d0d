import type { DType } from '@kiln/ir';
import { type Dispatch, ENTRY, type TensorArg, wgslType } from '../shader.js';

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

/** The first parameter word the loaders may use: the kernel's own come before it. */
export const GEMM_LOADER_PARAMS = 8;

/** A matrix product C[b] = A[b] B[b] whose operands are read through WGSL functions. */
export interface Gemm {
  /** What the loaders depend on beyond dtype (their kind, ranks, transposes); never a size. */
  readonly key: string;
  readonly dtype: DType;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batches: number;
  /**
   * WGSL defining `fn loadA(batch: u32, r: u32, k: u32) -> T` and `fn loadB(batch: u32, k: u32,
   * c: u32) -> T`, called only inside the bounds, reading tensors 0 and 1 (ld0, ld1) and their own
   * parameters from P(GEMM_LOADER_PARAMS) on.
   */
  readonly loaders: string;
  /** A is contiguous along its rows (a transposed operand): stage it row-fastest. */
  readonly aAlongRows: boolean;
  /** B is contiguous along k (a transposed operand): stage it k-fastest. */
  readonly bAlongK: boolean;
  readonly extra: readonly number[];
  /** A's tensor, B's tensor, and C's (row-major [batches, m, n]). */
  readonly tensors: readonly [TensorArg, TensorArg, TensorArg];
}

/**
 * Tiled matrix product with workgroup memory and register blocking: a workgroup of 256 threads
 * computes a 128x128 tile of C, walking K in steps of 16. Each step stages a 128x16 slab of A and a
 * 16x128 slab of B in workgroup memory (8 elements each per thread), then every thread does 16 steps
 * of an 8x8 outer product from there, so each value read from storage is used 128 times. A thread's
 * rows and columns are strided by 16 so neighbouring threads touch neighbouring words, and slabs
 * are staged along whichever axis is contiguous in memory. Each output accumulates over k in order.
 * That axis is a parameter, not part of the shader: on a software adapter one variant of this kernel
 * takes seconds to compile, and per-transpose variants multiplied that by four for a few selects.
 * matmul reads A and B directly; the convolutions read them through index arithmetic (implicit
 * GEMM), so they share this kernel's tiling.
 */
export function gemmDispatch(g: Gemm): Dispatch {
  const tilesM = Math.ceil(g.m / BM);
  const tilesN = Math.ceil(g.n / BN);
  const ty = wgslType(g.dtype);
  const zero = g.dtype === 'int32' ? '0' : '0.0';
  const body = `${g.loaders}
var<workgroup> As: array<${ty}, ${BM * BK}>;
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
  let aAlongRows = P(6u) != 0u;
  let bAlongK = P(7u) != 0u;
${grid((i, j) => `  var c${i}_${j}: ${ty} = ${zero};`)}
  for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
    for (var q = 0u; q < ${(BM * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
      let r = select(e / ${BK}u, e % ${BM}u, aAlongRows);
      let kq = select(e % ${BK}u, e / ${BM}u, aAlongRows);
      var av: ${ty} = ${zero};
      if (row0 + r < M && k0 + kq < K) { av = loadA(batch, row0 + r, k0 + kq); }
      As[r * ${BK}u + kq] = av;
    }
    for (var q = 0u; q < ${(BN * BK) / THREADS}u; q++) {
      let e = lid + q * ${THREADS}u;
      let kq = select(e / ${BN}u, e % ${BK}u, bAlongK);
      let c = select(e % ${BN}u, e / ${BK}u, bAlongK);
      var bv: ${ty} = ${zero};
      if (k0 + kq < K && col0 + c < N) { bv = loadB(batch, k0 + kq, col0 + c); }
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
  return {
    key: `gemm:${g.key}`,
    body,
    tensors: g.tensors,
    params: [g.m, g.n, g.k, tilesM, tilesN, g.batches, g.aAlongRows ? 1 : 0, g.bAlongK ? 1 : 0, ...g.extra],
    workgroups: tilesM * tilesN * g.batches,
  };
}
