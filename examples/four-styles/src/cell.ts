import { matmul, mul, randomNormal, sum, type Tensor, tanh } from 'kiln-tensor';

/**
 * The computation, shared by every style: a small recurrent cell h <- 0.9 * tanh(h W) applied
 * until the state's squared norm falls under EPSILON, at most MAX_STEPS times. How many steps it
 * takes depends on the data, which is exactly what a trace cannot see.
 */
export const EPSILON = 0.05;
export const MAX_STEPS = 60;
export const DECAY = 0.9;
export const WIDTH = 8;

export const makeWeights = (): Tensor => randomNormal([WIDTH, WIDTH], { seed: 11, stddev: 0.25 });

/** Eager (PyTorch style): plain JS drives the loop, reading the norm with item(). */
export function recur(h0: Tensor, w: Tensor): Tensor {
  let h = h0;
  let i = 0;
  while (sum(mul(h, h)).item() > EPSILON && i < MAX_STEPS) {
    h = mul(tanh(matmul(h, w)), DECAY);
    i = i + 1;
  }
  return h;
}

/** Initial states of different sizes: they take different numbers of steps. */
export const inputs = (): Tensor[] =>
  [0.15, 0.6, 3].map((scale, k) => randomNormal([1, WIDTH], { seed: 100 + k, stddev: scale }));
