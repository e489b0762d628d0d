import type { HostArray } from '@kiln/ir';
import { roundHalfEven } from './round.js';

/** Helpers a generated loop may call, passed in as `H`. */
export const HELPERS = { roundHalfEven };

/** A generated loop over a broadcast output: inputs read through per-input strides. */
export type StridedLoop = (
  ins: readonly HostArray[],
  outs: readonly HostArray[],
  shape: readonly number[],
  strides: readonly (readonly number[])[],
) => void;

/**
 * The one loop every elementwise kernel runs, single ops and fused groups alike: the output walked
 * in order, the innermost (collapsed) dimension in a tight loop, each input's offset advanced by its
 * stride (0 where it broadcasts), or a straight loop where no input broadcasts but a scalar. `body` computes from the loaded elements `${load}0..` and writes
 * the outputs `o0..` at index `o`. The source is built only from kiln's fixed expression tables.
 */
export function compileStridedLoop(
  arity: number,
  outputs: number,
  load: string,
  body: string,
  /**
   * Inputs that are one value broadcast over the whole output (a scalar constant: `x * 1.5`). The
   * straight loop then reads each once, before it, instead of falling back to the strided walk.
   */
  scalar: readonly boolean[] = [],
): StridedLoop {
  const k = [...Array(arity).keys()];
  const once = (i: number) => scalar[i] === true;
  const source = `
    ${k.map((i) => `const a${i} = ins[${i}];`).join(' ')}
    ${[...Array(outputs).keys()].map((j) => `const o${j} = outs[${j}];`).join(' ')}
    const rank = shape.length;
    const inner = shape[rank - 1];
    ${k.map((i) => `const s${i} = strides[${i}][rank - 1];`).join(' ')}
    const total = outs[0].length;
    if (total === 0) return;
    // Same-shape operands (the common case) collapse to one dimension of stride 1: a straight
    // loop, one index for all, which V8 compiles to tighter code than the strided walk below.
    if (rank === 1 && ${k.map((i) => `s${i} === ${once(i) ? 0 : 1}`).join(' && ') || 'true'}) {
      ${k
        .filter(once)
        .map((i) => `const ${load}${i} = a${i}[0];`)
        .join(' ')}
      for (let o = 0; o < total; o++) {
        ${k
          .filter((i) => !once(i))
          .map((i) => `const ${load}${i} = a${i}[o];`)
          .join(' ')}
        ${body}
      }
      return;
    }
    const idx = new Int32Array(rank);
    ${k.map((i) => `let b${i} = 0;`).join(' ')}
    for (let o = 0; o < total; ) {
      ${k.map((i) => `let i${i} = b${i};`).join(' ')}
      for (let j = 0; j < inner; j++, o++) {
        ${k.map((i) => `const ${load}${i} = a${i}[i${i}]; i${i} += s${i};`).join(' ')}
        ${body}
      }
      for (let d = rank - 2; d >= 0; d--) {
        const n = shape[d];
        ${k.map((i) => `b${i} += strides[${i}][d];`).join(' ')}
        if (++idx[d] < n) break;
        idx[d] = 0;
        ${k.map((i) => `b${i} -= strides[${i}][d] * n;`).join(' ')}
      }
    }`;
  const make = new Function('H', `return function stridedLoop(ins, outs, shape, strides) {${source}}`) as (
    h: typeof HELPERS,
  ) => StridedLoop;
  return make(HELPERS);
}
