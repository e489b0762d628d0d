import {
  add,
  type Device,
  Graph,
  HostTensor,
  heNormal,
  logSoftmax,
  matmul,
  mean,
  mul,
  neg,
  Prng,
  relu,
  SGD,
  sum,
  tensor,
} from '@kiln/ir';
import { Session } from '@kiln/scheduler';
import type { Tf } from './tfjs-webgpu.js';

/**
 * The MNIST MLP's training step, as in packages/scheduler/bench/train.bench.ts: 784-256-256-10 with
 * ReLU, softmax cross-entropy, one SGD update, batch 128, the loss read back. Same data and same
 * initial weights for every implementation, so their first losses must agree.
 */
export const BATCH = 128;
const SIZES = [784, 256, 256, 10] as const;
const LR = 0.05;

export type TrainStep = () => Promise<number>;

/** A training step set up on one implementation. */
export interface TrainStepCase {
  readonly step: TrainStep;
  readonly close: () => Promise<void>;
}

export interface MlpProblem {
  readonly x: Float32Array;
  readonly y: Float32Array;
  /** w0, b0, w1, b1, w2, b2 as kiln initializes them. */
  readonly initial: readonly HostTensor[];
}

function buildGraph() {
  const g = new Graph();
  const x = g.placeholder('float32', [BATCH, SIZES[0]], 'x');
  const y = g.placeholder('float32', [BATCH, SIZES[3]], 'y');
  let h = x;
  for (let l = 0; l < 3; l++) {
    const w = g.variable(`w${l}`, heNormal(g, [SIZES[l]!, SIZES[l + 1]!], { seed: l + 1 }));
    const b = g.variable(`b${l}`, tensor(g, new Array(SIZES[l + 1]!).fill(0), [SIZES[l + 1]!]));
    h = add(matmul(h, w), b);
    if (l < 2) h = relu(h);
  }
  const loss = neg(mean(sum(mul(y, logSoftmax(h)), -1)));
  return { graph: g, loss, train: new SGD({ learningRate: LR }).minimize(loss) };
}

export async function mlpProblem(initDevice: Device): Promise<MlpProblem> {
  const rng = new Prng(5);
  const x = Float32Array.from({ length: BATCH * SIZES[0] }, () => rng.next());
  const y = new Float32Array(BATCH * SIZES[3]);
  for (let i = 0; i < BATCH; i++) y[i * SIZES[3] + rng.int(0, 9)] = 1;
  const session = new Session(buildGraph().graph, { device: initDevice });
  const checkpoint = await session.checkpoint();
  await session.close();
  const initial = [0, 1, 2].flatMap((l) => [checkpoint.variables[`w${l}`]!, checkpoint.variables[`b${l}`]!]);
  return { x, y, initial };
}

/** kiln: the whole step compiled by the Session into one program on `device`. */
export function kilnTrainStep(
  device: Device,
  problem: MlpProblem,
): { step: TrainStep; close: () => Promise<void> } {
  const { graph, loss, train } = buildGraph();
  const session = new Session(graph, { device });
  const feeds = {
    x: new HostTensor('float32', [BATCH, SIZES[0]], problem.x),
    y: new HostTensor('float32', [BATCH, SIZES[3]], problem.y),
  };
  return {
    step: async () => (await session.run(loss, feeds, { targets: train })).data[0]!,
    close: () => session.close(),
  };
}

/** TensorFlow.js: the same model and update, weights copied from kiln's initial values. */
export function tfjsTrainStep(tf: Tf, problem: MlpProblem): TrainStepCase {
  const vars = problem.initial.map((v) => tf.variable(tf.tensor(v.data as Float32Array, [...v.shape])));
  const xs = tf.tensor2d(problem.x, [BATCH, SIZES[0]]);
  const ys = tf.tensor2d(problem.y, [BATCH, SIZES[3]]);
  const optimizer = tf.train.sgd(LR);
  const f = () => {
    let a = xs;
    for (let l = 0; l < 3; l++) {
      a = tf.add(tf.matMul(a, vars[2 * l]!), vars[2 * l + 1]!);
      if (l < 2) a = tf.relu(a);
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(ys, tf.logSoftmax(a)), -1))) as ReturnType<typeof tf.scalar>;
  };
  return {
    step: async () => {
      const l = optimizer.minimize(f, true)!;
      const value = (await l.data())[0]!;
      l.dispose();
      return value;
    },
    close: async () => {
      for (const v of vars) v.dispose();
      xs.dispose();
      ys.dispose();
      optimizer.dispose();
    },
  };
}
