import type { KernelFactory } from '@kiln/ir';
import { bitsToUnit, threefry2x32 } from '@kiln/ir';

/** Counter-based: element i draws threefry((seed, 0), (i, counter + offset)), as in the IR. */
interface RandomAttrs {
  readonly seed: number;
  readonly counter: number;
}

function counterOf(attrs: RandomAttrs, offset: ArrayLike<number> | undefined): number {
  return (attrs.counter + (offset ? offset[0]! : 0)) | 0;
}

export const randomUniform: KernelFactory<RandomAttrs & { low: number; high: number }> = (node) => {
  const { seed, low, high } = node.attrs;
  const words = new Uint32Array(2);
  return ([offset], [out]) => {
    const counter = counterOf(node.attrs, offset);
    for (let i = 0; i < out!.length; i++) {
      threefry2x32(seed, 0, i, counter, words);
      out![i] = low + (high - low) * bitsToUnit(words[0]!);
    }
  };
};

export const randomNormal: KernelFactory<RandomAttrs & { mean: number; stddev: number }> = (node) => {
  const { seed, mean, stddev } = node.attrs;
  const words = new Uint32Array(2);
  const TWO_PI = 2 * Math.PI;
  return ([offset], [out]) => {
    const counter = counterOf(node.attrs, offset);
    for (let i = 0; i < out!.length; i++) {
      threefry2x32(seed, 0, i, counter, words);
      const u1 = bitsToUnit(words[0]!) + 2 ** -23;
      out![i] = mean + stddev * Math.sqrt(-2 * Math.log(u1)) * Math.cos(TWO_PI * bitsToUnit(words[1]!));
    }
  };
};
