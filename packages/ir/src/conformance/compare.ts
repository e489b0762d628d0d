import type { HostArray } from '../dtype.js';
import type { RefTensor } from '../ref-tensor.js';

/**
 * The tolerances of the conformance kit. int32 and bool must match exactly. float32 results must
 * satisfy |got - want| <= f * (ATOL + RTOL * |want|), where `want` is the float64 reference and f
 * is the op's tolerance factor (1 for elementwise ops; the reduced length for reductions and
 * matmul, which accumulate rounding). NaN must meet NaN; infinities must match exactly; -0 == 0.
 */
export const FLOAT32_ATOL = 1e-6;
export const FLOAT32_RTOL = 1e-5;

/** Returns null when `got` matches `want`, otherwise a message naming the first mismatch. */
export function compareToReference(got: HostArray, want: RefTensor, factor = 1): string | null {
  if (got.length !== want.data.length) return `got ${got.length} elements, expected ${want.data.length}`;
  const exact = want.dtype !== 'float32';
  let bad = 0;
  let first = '';
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want.data[i]!;
    let ok: boolean;
    if (exact || !Number.isFinite(w)) ok = g === w || (Number.isNaN(g) && Number.isNaN(w));
    else ok = Math.abs(g - w) <= factor * (FLOAT32_ATOL + FLOAT32_RTOL * Math.abs(w));
    if (!ok) {
      if (bad === 0) first = `element ${i}: got ${g}, expected ${w}`;
      bad++;
    }
  }
  return bad === 0
    ? null
    : `${bad} of ${got.length} elements differ; first at ${first} (tolerance factor ${factor})`;
}
