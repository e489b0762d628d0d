import type { CpuDevice } from '@kiln/backend-cpu';
import { add, exp, extractSubgraph, Graph, mul, Prng, sigmoid, sub, tanh } from '@kiln/ir';
import { singleOpSubgraph } from '@kiln/ir/conformance';
import * as tf from '@tensorflow/tfjs-core';
import { kilnSide, type Side, tfjsSide } from './sides.js';

/** How much to measure: `rounds` interleaved rounds of at least `time` ms and `iterations` calls per side. */
export interface Budget {
  readonly rounds: number;
  readonly time: number;
  readonly iterations: number;
  /** Untimed calls per side before the first round, so both are measured with optimized code. */
  readonly warmup: number;
}

export interface Case {
  readonly name: string;
  /** The least speedup (tfjs median / kiln median) this case must show; absent where none is set. */
  readonly goal?: number;
  readonly budget: Budget;
  /** Agreement check before timing: |kiln - tfjs| <= atol + rtol * |tfjs| elementwise. */
  readonly atol: number;
  readonly rtol: number;
  readonly make: (device: CpuDevice) => { kiln: Side; tfjs: Side };
}

const F32 = 'float32' as const;

function randomData(seed: number, n: number, scale: number): Float32Array {
  const rng = new Prng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

function matmulCase(n: number, budget: Budget, goal?: number): Case {
  return {
    name: `matmul ${n}x${n} @ ${n}x${n}`,
    ...(goal === undefined ? {} : { goal }),
    budget,
    // Both accumulate n products of unit normals in different orders (kiln in float64, tfjs in
    // float32): the difference grows with sqrt(n) times float32 rounding of partial sums.
    atol: 2e-6 * n,
    rtol: 1e-4,
    make: (device) => {
      const a = randomData(n, n * n, 1);
      const b = randomData(n + 1, n * n, 1);
      const t = { dtype: F32, shape: [n, n] };
      return {
        kiln: kilnSide(device, singleOpSubgraph('matmul', [t, t], { transposeA: false, transposeB: false }), [
          a,
          b,
        ]),
        tfjs: tfjsSide([a, b], [t.shape, t.shape], (x, y) => tf.matMul(x!, y!)),
      };
    },
  };
}

/** y = tanh(exp(x * 0.5 + 0.1) - x) * sigmoid(x): seven elementwise ops, six intermediates. */
function elementwiseChainCase(n: number, budget: Budget): Case {
  return {
    name: `elementwise chain (7 ops) on ${n} floats`,
    budget,
    atol: 1e-6,
    rtol: 1e-5,
    make: (device) => {
      const data = randomData(7, n, 1.5);
      const g = new Graph();
      const x = g.placeholder(F32, [n], 'x');
      const y = mul(tanh(sub(exp(add(mul(x, 0.5), 0.1)), x)), sigmoid(x));
      const { subgraph } = extractSubgraph(g, {
        nodes: g.nodes.filter((node) => node.op !== 'placeholder').map((node) => node.id),
        bind: new Map([[x.id, { dtype: F32, shape: [n] }]]),
        results: [y.id],
      });
      return {
        kiln: kilnSide(device, subgraph, [data]),
        tfjs: tfjsSide([data], [[n]], (v) =>
          tf.mul(tf.tanh(tf.sub(tf.exp(tf.add(tf.mul(v!, 0.5), 0.1)), v!)), tf.sigmoid(v!)),
        ),
      };
    },
  };
}

function softmaxCase(rows: number, cols: number, budget: Budget): Case {
  return {
    name: `softmax [${rows}, ${cols}] over the last axis`,
    budget,
    atol: 1e-7,
    rtol: 1e-4,
    make: (device) => {
      const logits = randomData(11, rows * cols, 3);
      const t = { dtype: F32, shape: [rows, cols] };
      return {
        kiln: kilnSide(device, singleOpSubgraph('softmax', [t], { axis: -1 }), [logits]),
        tfjs: tfjsSide([logits], [t.shape], (v) => tf.softmax(v!, -1)),
      };
    },
  };
}

/**
 * The cases of the issue. Budgets keep the whole run near a minute on a small machine: tfjs takes
 * seconds per 1024 matmul, so that case gets few calls, the millisecond cases many.
 */
export const CASES: readonly Case[] = [
  matmulCase(128, { rounds: 4, time: 250, iterations: 10, warmup: 20 }),
  matmulCase(256, { rounds: 4, time: 300, iterations: 5, warmup: 5 }),
  matmulCase(512, { rounds: 4, time: 0, iterations: 3, warmup: 2 }, 2),
  matmulCase(1024, { rounds: 3, time: 0, iterations: 2, warmup: 1 }, 2),
  elementwiseChainCase(1 << 20, { rounds: 4, time: 400, iterations: 5, warmup: 5 }),
  softmaxCase(256, 1000, { rounds: 4, time: 300, iterations: 10, warmup: 10 }),
];
