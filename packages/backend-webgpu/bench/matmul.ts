import { type Device, matmul, Prng } from '@kiln/ir';
import { EagerContext, tensor } from '@kiln/scheduler';
import type { Tf } from './tfjs-webgpu.js';

/** One n x n float32 matmul, c = a @ b, with c read back to the host: what a caller waits for. */
export interface MatmulCase {
  readonly run: () => Promise<ArrayLike<number>>;
  readonly dispose: () => void;
}

export function matmulInputs(n: number): { a: Float32Array; b: Float32Array } {
  const rng = new Prng(n);
  const fill = () => Float32Array.from({ length: n * n }, () => rng.normal());
  return { a: fill(), b: fill() };
}

/** kiln, eager: the inputs stay on the device; each call runs the cached one-op program. */
export function kilnMatmul(device: Device, n: number, a: Float32Array, b: Float32Array): MatmulCase {
  const ctx = new EagerContext(device);
  const ta = tensor(ctx, a, [n, n]);
  const tb = tensor(ctx, b, [n, n]);
  return {
    run: async () => {
      const c = matmul(ta, tb);
      try {
        return await c.data();
      } finally {
        c.dispose();
      }
    },
    dispose: () => {
      ta.dispose();
      tb.dispose();
    },
  };
}

export function tfjsMatmul(tf: Tf, n: number, a: Float32Array, b: Float32Array): MatmulCase {
  const ta = tf.tensor2d(a, [n, n]);
  const tb = tf.tensor2d(b, [n, n]);
  return {
    run: async () => {
      const c = tf.matMul(ta, tb);
      try {
        return await c.data();
      } finally {
        c.dispose();
      }
    },
    dispose: () => {
      ta.dispose();
      tb.dispose();
    },
  };
}
