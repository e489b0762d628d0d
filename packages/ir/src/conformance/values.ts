import { DTYPE_INFO } from '../dtype.js';
import type { ConformanceInput } from '../ops/op-def.js';
import type { Prng } from '../prng.js';
import { type RefTensor, refTensor } from '../ref-tensor.js';

/**
 * Values where kernels differ: NaN, both infinities, both zeros, and magnitudes that overflow exp.
 * No subnormals: GPUs may flush them to zero, and kiln does not promise either way.
 */
const SPECIALS = [Number.NaN, Infinity, -Infinity, 0, -0, 100, -100, 0.5, -0.5];

export function generateInput(rng: Prng, input: ConformanceInput): RefTensor {
  const t = refTensor(input.dtype, input.shape);
  const domain = input.domain ?? 'normal';
  const round = DTYPE_INFO[input.dtype].round;
  for (let i = 0; i < t.data.length; i++) {
    let x: number;
    if (input.dtype === 'bool') x = rng.bool() ? 1 : 0;
    else if (typeof domain === 'object') x = rng.int(domain.range[0], domain.range[1]);
    else if (domain === 'positive') x = 0.1 + 3.9 * rng.next();
    else if (domain === 'special' && rng.bool(0.4)) x = rng.pick(SPECIALS);
    else x = input.dtype === 'int32' ? Math.round(rng.normal() * 10) : rng.normal();
    t.data[i] = round(x);
  }
  return t;
}
