import type { HostArray } from '@kiln/ir';
import { api, compileModule, PAGE, type WasmApi, type WasmMemory } from './api.js';
import { assemble, FunctionBody, I32, V128 } from './assembler.js';

/**
 * Single-precision GEMM on WebAssembly SIMD, in the GotoBLAS layout the TypeScript kernel uses:
 * B packed into KC x NC panels of 8-column strips, A into MC x KC panels of 4-row strips, and a
 * 4 x 8 register tile (eight 128-bit accumulators) that reads both strips contiguously. Per step
 * of the inner loop: two loads of B, four loads of A each splat to a vector, eight multiplies and
 * eight adds: 64 flops for six loads, where the scalar kernel does 32 for eight. Products
 * accumulate in float32, as XNNPACK's and every GPU's do (the TypeScript kernel accumulates in
 * float64); the conformance kit's tolerances are the float32 ones.
 *
 * The operands are packed from wherever they are (any strides: transposes cost nothing extra)
 * into the module's own memory, zero-padded to whole tiles, so the kernel has no edge cases; C
 * is accumulated there, padded too, and copied out once.
 */
const MR = 4;
/** Vectors of four per row of the tile: NR = 8 columns. Measured best of 3-6 rows x 8-16 columns. */
const NV = 2;
const NR = 4 * NV;
const KC = 256;
const MC = 64;
const NC = 512;

/** An operand: element (i, j) at offset + i * rowStride + j * colStride. */
export interface WasmOperand {
  readonly data: HostArray;
  readonly offset: number;
  readonly rowStride: number;
  readonly colStride: number;
}

/**
 * panel(mc, nc, kc, pa, pb, c, ldc): C[mc x nc] += packed A (mc x kc) x packed B (kc x nc), all
 * addresses in bytes, mc a multiple of 4 and nc of 8, C's rows ldc floats apart; panelStore is the
 * same with C = instead of C +=, for the first pass over k (C is then never zeroed first).
 */
function panelFunction(accumulate: boolean): FunctionBody {
  const f = new FunctionBody(7);
  const [mc, nc, kc, pa, pb, c, ldc] = [0, 1, 2, 3, 4, 5, 6];
  const js = f.local(I32);
  const is = f.local(I32);
  const a = f.local(I32);
  const b = f.local(I32);
  const p = f.local(I32);
  const cp = f.local(I32);
  const acc = Array.from({ length: MR * NV }, () => f.local(V128));
  const bv = Array.from({ length: NV }, () => f.local(V128));
  const av = f.local(V128);
  f.i32(0).set(js);
  f.doWhile(() => {
    f.i32(0).set(is);
    f.doWhile(() => {
      // The strips: A's rows is..is+3 and B's columns js..js+7, each kc steps long.
      f.get(pa).get(is).get(kc).mul().i32(2).shl().add().set(a);
      f.get(pb).get(js).get(kc).mul().i32(2).shl().add().set(b);
      for (const x of acc) f.v128Zero().set(x);
      f.get(kc).set(p);
      f.doWhile(() => {
        for (let h = 0; h < NV; h++)
          f.get(b)
            .v128Load(16 * h)
            .set(bv[h]!);
        for (let r = 0; r < MR; r++) {
          f.get(a)
            .load32Splat(4 * r)
            .set(av);
          for (let h = 0; h < NV; h++)
            f.get(acc[NV * r + h]!)
              .get(av)
              .get(bv[h]!)
              .v128('f32x4.mul')
              .v128('f32x4.add')
              .set(acc[NV * r + h]!);
        }
        // Unrolling this loop measured slower: V8 then spills accumulators.
        f.bump(a, 4 * MR).bump(b, 4 * NR);
        f.get(p).i32(1).sub().tee(p).i32(0).ne();
      });
      // C's tile += the accumulators (or = them, on the first pass over k), row by row.
      f.get(c).get(is).get(ldc).mul().get(js).add().i32(2).shl().add().set(cp);
      for (let r = 0; r < MR; r++) {
        for (let h = 0; h < NV; h++) {
          f.get(cp);
          if (accumulate)
            f.get(cp)
              .v128Load(16 * h)
              .get(acc[NV * r + h]!)
              .v128('f32x4.add');
          else f.get(acc[NV * r + h]!);
          f.v128Store(16 * h);
        }
        f.get(cp).get(ldc).i32(2).shl().add().set(cp);
      }
      f.bump(is, MR).get(is).get(mc).ltU();
    });
    f.bump(js, NR).get(js).get(nc).ltU();
  });
  return f;
}

let module: object | null | undefined;

/** The compiled kernel module, or null where this runtime has no WebAssembly SIMD. */
function compiled(): object | null {
  if (module !== undefined) return module;
  module = compileModule(assemble({ panel: panelFunction(true), panelStore: panelFunction(false) }));
  return module;
}

/** Whether this runtime runs the SIMD kernels (WebAssembly with 128-bit SIMD). */
export const wasmSimdAvailable = (): boolean => compiled() !== null;

const ceil = (x: number, to: number) => Math.ceil(x / to) * to;

/**
 * One instance per thread (kernels run one at a time on it), its memory grown to the largest
 * product seen: [packed A | packed B | C].
 */
type Panel = (mc: number, nc: number, kc: number, pa: number, pb: number, c: number, ldc: number) => void;

class WasmGemm {
  private readonly memory: WasmMemory;
  private readonly panel: Panel;
  private readonly panelStore: Panel;
  private f32: Float32Array;

  constructor(wasm: WasmApi, compiledModule: object) {
    this.memory = new wasm.Memory({ initial: 1 });
    this.f32 = new Float32Array(this.memory.buffer);
    const instance = new wasm.Instance(compiledModule, { env: { memory: this.memory } });
    this.panel = instance.exports.panel as Panel;
    this.panelStore = instance.exports.panelStore as Panel;
  }

  /** C (m x n, row-major at cOffset) = A (m x k) x B (k x n). */
  gemm(m: number, n: number, k: number, a: WasmOperand, b: WasmOperand, c: HostArray, cOffset: number): void {
    if (k === 0) {
      // No products: every entry is an empty sum (the passes below, which write C, never run).
      c.fill(0, cOffset, cOffset + m * n);
      return;
    }
    const mp = ceil(m, MR);
    const np = ceil(n, NR);
    const kc0 = Math.min(KC, k);
    // Float offsets of the three regions.
    const pa = 0;
    const pb = pa + MC * kc0;
    const cBase = ceil(pb + kc0 * Math.min(NC, np), 4);
    this.reserve((cBase + mp * np) * 4);
    const mem = this.f32;
    for (let jc = 0; jc < np; jc += NC) {
      const nc = Math.min(NC, np - jc);
      for (let pc = 0; pc < k; pc += KC) {
        const kc = Math.min(KC, k - pc);
        packB(b, pc, jc, kc, nc, n, mem, pb);
        for (let ic = 0; ic < mp; ic += MC) {
          const mc = Math.min(MC, mp - ic);
          packA(a, ic, pc, mc, kc, m, mem, pa);
          (pc === 0 ? this.panelStore : this.panel)(
            mc,
            nc,
            kc,
            pa * 4,
            pb * 4,
            (cBase + ic * np + jc) * 4,
            np,
          );
        }
      }
    }
    for (let i = 0; i < m; i++) {
      const row = cBase + i * np;
      c.set(mem.subarray(row, row + n), cOffset + i * n);
    }
  }

  private reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
  }
}

/** Rows i0.. of A, 4 at a time, each strip kc steps of 4 values (rows past m are zeros). */
function packA(
  a: WasmOperand,
  i0: number,
  p0: number,
  mc: number,
  kc: number,
  m: number,
  out: Float32Array,
  at: number,
): void {
  const { data, rowStride: rs, colStride: cs } = a;
  for (let is = 0; is < mc; is += MR) {
    const base = at + is * kc;
    for (let r = 0; r < MR; r++) {
      const i = i0 + is + r;
      if (i >= m) {
        for (let p = 0; p < kc; p++) out[base + p * MR + r] = 0;
        continue;
      }
      let src = a.offset + i * rs + p0 * cs;
      for (let p = 0; p < kc; p++, src += cs) out[base + p * MR + r] = data[src]!;
    }
  }
}

/** Columns j0.. of B, 8 at a time, each strip kc steps of 8 values (columns past n are zeros). */
function packB(
  b: WasmOperand,
  p0: number,
  j0: number,
  kc: number,
  nc: number,
  n: number,
  out: Float32Array,
  at: number,
): void {
  const { data, rowStride: rs, colStride: cs } = b;
  for (let js = 0; js < nc; js += NR) {
    const base = at + js * kc;
    const j = j0 + js;
    if (cs === 1 && j + NR <= n) {
      // Whole rows of 8 contiguous values, the untransposed case: a plain loop (a subarray and
      // set per row measured 20% slower over the whole product).
      let src = b.offset + p0 * rs + j;
      for (let p = 0; p < kc; p++, src += rs) {
        const o = base + p * NR;
        for (let q = 0; q < NR; q++) out[o + q] = data[src + q]!;
      }
      continue;
    }
    for (let q = 0; q < NR; q++) {
      if (j + q >= n) {
        for (let p = 0; p < kc; p++) out[base + p * NR + q] = 0;
        continue;
      }
      let src = b.offset + p0 * rs + (j + q) * cs;
      for (let p = 0; p < kc; p++, src += rs) out[base + p * NR + q] = data[src]!;
    }
  }
}

let shared: WasmGemm | null = null;

/** This thread's SIMD GEMM, or null where the runtime has no WebAssembly SIMD. */
export function wasmGemm(): WasmGemm | null {
  if (shared) return shared;
  const m = compiled();
  shared = m && api ? new WasmGemm(api, m) : null;
  return shared;
}
