import type { KernelFactory, KernelFn } from '@kiln/ir';
import { type HostArray, normalizeAxes, normalizeAxis, type OpName } from '@kiln/ir';
import { permutedCopy } from './layout.js';

/**
 * Reductions run as (outer, reduced, inner) loops. Reduced axes that are not one contiguous block
 * are first moved to the end by a transposing copy, so a single loop shape serves every case.
 */
interface Plan {
  readonly outer: number;
  readonly n: number;
  readonly inner: number;
  /** A copy into reduced-last order, when the axes are not contiguous. */
  readonly permute?: (x: HostArray) => HostArray;
}

function plan(shape: readonly number[], axes: readonly number[]): Plan {
  const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  if (axes.length === 0) return { outer: size(shape), n: 1, inner: 1 };
  if (contiguous) {
    return {
      outer: size(shape.slice(0, axes[0])),
      n: size(axes.map((a) => shape[a]!)),
      inner: size(shape.slice(axes[axes.length - 1]! + 1)),
    };
  }
  const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const perm = [...kept, ...axes];
  return {
    outer: size(kept.map((d) => shape[d]!)),
    n: size(axes.map((a) => shape[a]!)),
    inner: 1,
    permute: permutedCopy(shape, perm),
  };
}

type Accumulate = (x: HostArray, out: HostArray, outer: number, n: number, inner: number) => void;

const generated = new Map<string, Accumulate>();
/** A generated (outer, n, inner) loop folding with `step` from `init`, then `finish`. */
function accumulator(init: string, step: string, finish: string): Accumulate {
  const key = `${init}|${step}|${finish}`;
  let fn = generated.get(key);
  if (!fn) {
    fn = new Function(
      'x',
      'out',
      'outer',
      'n',
      'inner',
      `for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = ${init};
          for (let j = 0, p = o * n * inner + i; j < n; j++, p += inner) { const v = x[p]; acc = ${step}; }
          out[o * inner + i] = ${finish};
        }
      }`,
    ) as Accumulate;
    generated.set(key, fn);
  }
  return fn;
}

// max/min propagate NaN: once acc is NaN, `v > acc` is false and NaN stays.
// An empty int32 max/min is the dtype's extreme, as the reference's saturating store of -/+Infinity.
const FOLDS: Partial<
  Record<OpName, { init: string; step: string; int?: string; intInit?: string; finish?: string }>
> = {
  sum: { init: '0', step: 'acc + v' },
  mean: { init: '0', step: 'acc + v', finish: 'acc / n' },
  prod: { init: '1', step: 'acc * v', int: 'Math.imul(acc, v)' },
  max: { init: '-Infinity', intInit: '-2147483648', step: 'v > acc || v !== v ? v : acc' },
  min: { init: 'Infinity', intInit: '2147483647', step: 'v < acc || v !== v ? v : acc' },
};

interface ReduceAttrs {
  readonly axes: readonly number[] | null;
  readonly keepDims: boolean;
}

export const reduction =
  (op: OpName): KernelFactory<ReduceAttrs> =>
  (node) => {
    const x = node.inputs[0]!;
    const fold = FOLDS[op]!;
    const isInt = x.dtype === 'int32';
    // int32 sums are exact in float64 far past any tensor size; wrap once at the end.
    const step = isInt && fold.int ? fold.int : fold.step;
    const finish = fold.finish ?? (isInt ? 'acc | 0' : 'acc');
    const p = plan(x.shape, normalizeAxes(node.attrs.axes, x.shape.length, op));
    const loop = accumulator(isInt ? (fold.intInit ?? fold.init) : fold.init, step, finish);
    return ([input], [out]) => loop(p.permute ? p.permute(input!) : input!, out!, p.outer, p.n, p.inner);
  };

function argKernel(better: '>' | '<'): KernelFactory<{ axis: number; keepDims: boolean }> {
  return (node) => {
    const x = node.inputs[0]!;
    const axis = normalizeAxis(node.attrs.axis, x.shape.length, 'argmax');
    const p = plan(x.shape, [axis]);
    const { outer, n, inner } = p;
    // The first NaN wins (numpy); otherwise the first of equal extremes.
    const run: KernelFn = ([input], [out]) => {
      const xs = input!;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let base = o * n * inner + i;
          let best = xs[base]!;
          let at = 0;
          if (!Number.isNaN(best)) {
            for (let j = 1; j < n; j++) {
              base += inner;
              const v = xs[base]!;
              if (Number.isNaN(v)) {
                at = j;
                break;
              }
              if (better === '>' ? v > best : v < best) {
                best = v;
                at = j;
              }
            }
          }
          out![o * inner + i] = at;
        }
      }
    };
    return run;
  };
}

export const argmax = argKernel('>');
export const argmin = argKernel('<');
