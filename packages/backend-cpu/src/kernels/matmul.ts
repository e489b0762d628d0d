import type { KernelFactory } from '@kiln/ir';
import { type HostArray, stridesOf } from '@kiln/ir';
import { wasmGemm } from '../wasm/gemm-wasm.js';
import { broadcastStrides } from './strided.js';

/**
 * Cache-blocked matmul in the GotoBLAS layout: B is packed into KC x NC panels of 4-column strips
 * and A into MC x KC panels of 4-row strips, both in float64, and a 4x4 register-blocked micro
 * kernel walks the packed strips contiguously. 16 accumulators, 8 loads per 16 multiply-adds,
 * against the 2 loads per multiply-add of the plain triple loop. Transposed operands are handled
 * by packing, so the micro kernel never sees a stride.
 */
const MR = 4;
const NR = 4;
const KC = 256;
const MC = 64;
const NC = 512;

/** An operand: element (i, j) at offset + i * rowStride + j * colStride. */
interface Operand {
  readonly data: HostArray;
  offset: number;
  readonly rowStride: number;
  readonly colStride: number;
}

function packA(
  a: Operand,
  i0: number,
  p0: number,
  mc: number,
  kc: number,
  m: number,
  out: Float64Array,
): void {
  const { data, rowStride: rs, colStride: cs } = a;
  for (let is = 0; is < mc; is += MR) {
    const base = is * kc;
    for (let r = 0; r < MR; r++) {
      const i = i0 + is + r;
      if (i >= m || is + r >= mc) {
        for (let p = 0; p < kc; p++) out[base + p * MR + r] = 0;
        continue;
      }
      let src = a.offset + i * rs + p0 * cs;
      for (let p = 0; p < kc; p++, src += cs) out[base + p * MR + r] = data[src]!;
    }
  }
}

function packB(
  b: Operand,
  p0: number,
  j0: number,
  kc: number,
  nc: number,
  n: number,
  out: Float64Array,
): void {
  const { data, rowStride: rs, colStride: cs } = b;
  for (let js = 0; js < nc; js += NR) {
    const base = js * kc;
    for (let c = 0; c < NR; c++) {
      const j = j0 + js + c;
      if (j >= n || js + c >= nc) {
        for (let p = 0; p < kc; p++) out[base + p * NR + c] = 0;
        continue;
      }
      let src = b.offset + p0 * rs + j * cs;
      for (let p = 0; p < kc; p++, src += rs) out[base + p * NR + c] = data[src]!;
    }
  }
}

/** C[co.., 4x4] += packed A strip x packed B strip; writes only `rows` x `cols` of the tile. */
// biome-ignore format: one line per row of the 4x4 register tile shows its shape
function micro(kc: number, pa: Float64Array, ao: number, pb: Float64Array, bo: number, c: HostArray, co: number, ldc: number, rows: number, cols: number): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = 0; p < kc; p++, ao += 4, bo += 4) {
    const a0 = pa[ao]!, a1 = pa[ao + 1]!, a2 = pa[ao + 2]!, a3 = pa[ao + 3]!;
    const b0 = pb[bo]!, b1 = pb[bo + 1]!, b2 = pb[bo + 2]!, b3 = pb[bo + 3]!;
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
  }
  if (rows === 4 && cols === 4) {
    c[co] = c[co]! + c00; c[co + 1] = c[co + 1]! + c01; c[co + 2] = c[co + 2]! + c02; c[co + 3] = c[co + 3]! + c03;
    co += ldc;
    c[co] = c[co]! + c10; c[co + 1] = c[co + 1]! + c11; c[co + 2] = c[co + 2]! + c12; c[co + 3] = c[co + 3]! + c13;
    co += ldc;
    c[co] = c[co]! + c20; c[co + 1] = c[co + 1]! + c21; c[co + 2] = c[co + 2]! + c22; c[co + 3] = c[co + 3]! + c23;
    co += ldc;
    c[co] = c[co]! + c30; c[co + 1] = c[co + 1]! + c31; c[co + 2] = c[co + 2]! + c32; c[co + 3] = c[co + 3]! + c33;
    return;
  }
  const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
  for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) c[co + r * ldc + q] = c[co + r * ldc + q]! + tile[r * 4 + q]!;
}

/** C (m x n, row-major at cOffset) = A (m x k) * B (k x n), float. */
function gemm(
  m: number,
  n: number,
  k: number,
  a: Operand,
  b: Operand,
  c: HostArray,
  cOffset: number,
  pa: Float64Array,
  pb: Float64Array,
): void {
  c.fill(0, cOffset, cOffset + m * n);
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      packB(b, pc, jc, kc, nc, n, pb);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packA(a, ic, pc, mc, kc, m, pa);
        for (let js = 0; js < nc; js += NR) {
          const cols = Math.min(NR, nc - js);
          for (let is = 0; is < mc; is += MR) {
            micro(
              kc,
              pa,
              is * kc,
              pb,
              js * kc,
              c,
              cOffset + (ic + is) * n + jc + js,
              n,
              Math.min(MR, mc - is),
              cols,
            );
          }
        }
      }
    }
  }
}

/**
 * Few rows (a batch of one, a matrix-vector product): packing B would cost as much as the
 * arithmetic, so each row of C accumulates rows of B scaled by A's entries (contiguous reads of
 * B), or, when B is transposed, dot products along B's contiguous rows.
 */
const SMALL_M = 4;
function gemmSmallM(
  m: number,
  n: number,
  k: number,
  a: Operand,
  b: Operand,
  c: HostArray,
  cOffset: number,
  acc: Float64Array,
): void {
  const { data: A, rowStride: ars, colStride: acs } = a;
  const { data: B, rowStride: brs, colStride: bcs } = b;
  for (let i = 0; i < m; i++) {
    const aRow = a.offset + i * ars;
    const cRow = cOffset + i * n;
    if (bcs === 1) {
      acc.fill(0, 0, n);
      let p = 0;
      // Four rows of B per pass: the accumulator is read and written a quarter as often.
      for (; p + 4 <= k; p += 4) {
        const a0 = A[aRow + p * acs]!;
        const a1 = A[aRow + (p + 1) * acs]!;
        const a2 = A[aRow + (p + 2) * acs]!;
        const a3 = A[aRow + (p + 3) * acs]!;
        const r0 = b.offset + p * brs;
        const r1 = r0 + brs;
        const r2 = r1 + brs;
        const r3 = r2 + brs;
        for (let j = 0; j < n; j++)
          acc[j] = acc[j]! + a0 * B[r0 + j]! + a1 * B[r1 + j]! + a2 * B[r2 + j]! + a3 * B[r3 + j]!;
      }
      for (; p < k; p++) {
        const av = A[aRow + p * acs]!;
        const bRow = b.offset + p * brs;
        for (let j = 0; j < n; j++) acc[j] = acc[j]! + av * B[bRow + j]!;
      }
      for (let j = 0; j < n; j++) c[cRow + j] = acc[j]!;
    } else {
      for (let j = 0; j < n; j++) {
        const bCol = b.offset + j * bcs;
        let sum = 0;
        for (let p = 0; p < k; p++) sum += A[aRow + p * acs]! * B[bCol + p * brs]!;
        c[cRow + j] = sum;
      }
    }
  }
}

/** int32: exact wrap-around products and sums; not blocked (int matmul is rare). */
function gemmInt(
  m: number,
  n: number,
  k: number,
  a: Operand,
  b: Operand,
  c: HostArray,
  cOffset: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        acc =
          (acc +
            Math.imul(
              a.data[a.offset + i * a.rowStride + p * a.colStride]!,
              b.data[b.offset + p * b.rowStride + j * b.colStride]!,
            )) |
          0;
      }
      c[cOffset + i * n + j] = acc;
    }
  }
}

/** The matmul kernel on a float GEMM (the TypeScript one, or the SIMD one). */
export const matmulOn =
  (gemm: FloatGemm): KernelFactory<{ transposeA: boolean; transposeB: boolean }> =>
  (node) => {
    const [ta, tb] = [node.inputs[0]!, node.inputs[1]!];
    const outShape = node.outputs[0]!.shape;
    const r = outShape.length;
    const [m, n] = [outShape[r - 2]!, outShape[r - 1]!];
    const [ar, ac] = ta.shape.slice(-2) as [number, number];
    const bc = tb.shape[tb.shape.length - 1]!;
    const k = node.attrs.transposeA ? ar : ac;
    const batchShape = outShape.slice(0, r - 2);
    const batches = batchShape.reduce((x, y) => x * y, 1);
    // Per-batch element offsets of each operand, broadcasting batch dimensions.
    const offsets = (shape: readonly number[]) => {
      const st = broadcastStrides(batchShape, shape.slice(0, -2));
      const outSt = stridesOf(batchShape);
      return Array.from(
        { length: batches },
        (_, t) =>
          batchShape.reduce((o, d, i) => o + (Math.floor(t / outSt[i]!) % d) * st[i]!, 0) *
          shape.slice(-2).reduce((x, y) => x * y, 1),
      );
    };
    const aOffsets = offsets(ta.shape);
    const bOffsets = offsets(tb.shape);
    const isInt = ta.dtype === 'int32';
    const scratch = isInt ? null : gemm.scratch(n, k);
    return ([aData, bData], [out]) => {
      const A: Operand = node.attrs.transposeA
        ? { data: aData!, offset: 0, rowStride: 1, colStride: ac }
        : { data: aData!, offset: 0, rowStride: ac, colStride: 1 };
      const B: Operand = node.attrs.transposeB
        ? { data: bData!, offset: 0, rowStride: 1, colStride: bc }
        : { data: bData!, offset: 0, rowStride: bc, colStride: 1 };
      for (let t = 0; t < batches; t++) {
        A.offset = aOffsets[t]!;
        B.offset = bOffsets[t]!;
        if (isInt) gemmInt(m, n, k, A, B, out!, t * m * n);
        else gemm.run(m, n, k, A, B, out!, t * m * n, scratch!);
      }
    };
  };

/** An operand of a float GEMM: element (i, j) at offset + i * rowStride + j * colStride. */
export type GemmOperand = Operand;

/** Packing space for a GEMM, sized once (at compile time) for products up to n columns, depth k. */
export interface GemmScratch {
  readonly pa: Float64Array;
  readonly pb: Float64Array;
  readonly acc: Float64Array;
}

/**
 * A float GEMM, C (m x n, row-major at cOffset) = A (m x k) * B (k x n), with the scratch it
 * wants: what matmul and the im2col convolutions run on.
 */
export interface FloatGemm {
  scratch(n: number, k: number): GemmScratch;
  run(
    m: number,
    n: number,
    k: number,
    a: GemmOperand,
    b: GemmOperand,
    c: HostArray,
    cOffset: number,
    scratch: GemmScratch,
  ): void;
}

/** The blocked TypeScript GEMM, accumulating in float64 (or the few-row path). */
export const typescriptGemm: FloatGemm = {
  scratch(n, k) {
    const kc = Math.min(KC, Math.max(k, 1));
    return {
      pa: new Float64Array(MC * kc),
      pb: new Float64Array(kc * Math.ceil(Math.min(NC, Math.max(n, 1)) / NR) * NR),
      acc: new Float64Array(Math.max(n, 1)),
    };
  },
  run(m, n, k, a, b, c, cOffset, scratch) {
    if (m <= SMALL_M) gemmSmallM(m, n, k, a, b, c, cOffset, scratch.acc);
    else gemm(m, n, k, a, b, c, cOffset, scratch.pa, scratch.pb);
  },
};

/**
 * The WebAssembly SIMD GEMM where this runtime has it, or null: products of more than a few
 * rows run on it; a few rows (a matrix-vector product) stay on the TypeScript path, which packs
 * nothing.
 */
export function simdGemm(): FloatGemm | null {
  const wasm = wasmGemm();
  if (!wasm) return null;
  const none = new Float64Array(0);
  return {
    scratch: (n) => ({ pa: none, pb: none, acc: new Float64Array(Math.max(n, 1)) }),
    run(m, n, k, a, b, c, cOffset, scratch) {
      if (m <= SMALL_M) gemmSmallM(m, n, k, a, b, c, cOffset, scratch.acc);
      else wasm.gemm(m, n, k, a, b, c, cOffset);
    },
  };
}
