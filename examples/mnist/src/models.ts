import {
  Adam,
  add,
  argmax,
  cast,
  conv2d,
  equal,
  Graph,
  type Graph as GraphType,
  heNormal,
  logSoftmax,
  matmul,
  maxPool,
  mean,
  mul,
  neg,
  relu,
  reshape,
  type SymbolicTensor,
  softmaxCrossEntropy,
  sum,
  tensor,
} from 'kiln-tensor';

/** A classifier graph: logits, a loss, and the optimizer's updates to run as targets each step. */
export interface Model {
  readonly name: string;
  readonly graph: GraphType;
  readonly logits: SymbolicTensor;
  readonly loss: SymbolicTensor;
  readonly train: SymbolicTensor[];
}

/** The fraction of rows whose largest logit is at the one-hot label: output 'accuracy'. */
export const accuracyOf = (logits: SymbolicTensor, labels: SymbolicTensor) =>
  mean(cast(equal(argmax(logits, -1), argmax(labels, -1)), 'float32'));

/** Mean softmax cross-entropy, written stably as -sum(labels * logSoftmax(logits)). */
export const crossEntropy = (logits: SymbolicTensor, labels: SymbolicTensor) =>
  neg(mean(sum(mul(labels, logSoftmax(logits)), -1)));

export function dense(
  g: Graph,
  input: SymbolicTensor,
  units: number,
  seed: number,
  name: string,
): SymbolicTensor {
  return g.scope(name, () => {
    const w = g.variable('w', heNormal(g, [input.shape[1] as number, units], { seed }));
    const b = g.variable('b', tensor(g, new Array(units).fill(0), [units]));
    return add(matmul(input, w), b);
  });
}

/** The forward half of a model: its graph (no optimizer yet), logits and mean loss. */
export interface Forward {
  readonly name: string;
  readonly graph: GraphType;
  readonly logits: SymbolicTensor;
  readonly loss: SymbolicTensor;
}

/** Runs `build` in a device scope when one is given. */
const on = <R>(g: Graph, device: string | undefined, build: () => R): R =>
  device === undefined ? build() : g.onDevice(device, build);

/** 784-256-256-10 with ReLU: logits and the mean cross-entropy, outputs 'logits' and 'loss'. */
export function mlpForward(): Forward {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 784], 'x');
  const y = g.placeholder('float32', [null, 10], 'y');
  const h1 = relu(dense(g, x, 256, 1, 'dense1'));
  const h2 = relu(dense(g, h1, 256, 2, 'dense2'));
  const logits = g.output('logits', dense(g, h2, 10, 3, 'dense3'));
  const loss = g.output('loss', crossEntropy(logits, y));
  g.output('accuracy', accuracyOf(logits, y));
  return { name: 'MLP 784-256-256-10', graph: g, logits, loss };
}

/** The MLP trained with Adam. */
export function mlp(learningRate = 1e-3): Model {
  const f = mlpForward();
  return { ...f, train: new Adam({ learningRate }).minimize(f.loss) };
}

function conv(
  g: Graph,
  input: SymbolicTensor,
  kernel: number,
  filters: number,
  seed: number,
  name: string,
): SymbolicTensor {
  return g.scope(name, () => {
    const channels = input.shape[3] as number;
    const w = g.variable('w', heNormal(g, [kernel, kernel, channels, filters], { seed }));
    const b = g.variable('b', tensor(g, new Array(filters).fill(0), [filters]));
    return relu(add(conv2d(input, w, { padding: 'same' }), b));
  });
}

/** Where the CNN's two halves run, for pipeline parallelism (default: wherever the placer likes). */
export interface CnnDevices {
  /** The convolutions and pooling. */
  readonly features?: string;
  /** The dense layer and the loss. */
  readonly classifier?: string;
}

/**
 * A small CNN: conv 3x3x16, max-pool 2, conv 3x3x32, max-pool 2, dense 10 (NHWC), with the fused
 * softmax cross-entropy as its loss.
 */
export function cnnForward(devices: CnnDevices = {}): Forward {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 784], 'x');
  const y = g.placeholder('float32', [null, 10], 'y');
  const flat = on(g, devices.features, () => {
    const image = reshape(x, [-1, 28, 28, 1]);
    const c1 = maxPool(conv(g, image, 3, 16, 11, 'conv1'), { windowSize: 2 });
    const c2 = maxPool(conv(g, c1, 3, 32, 12, 'conv2'), { windowSize: 2 });
    return reshape(c2, [-1, 7 * 7 * 32]);
  });
  return on(g, devices.classifier, () => {
    const logits = g.output('logits', dense(g, flat, 10, 13, 'dense'));
    const loss = g.output('loss', mean(softmaxCrossEntropy(logits, y)));
    g.output('accuracy', accuracyOf(logits, y));
    return { name: 'CNN conv16-conv32-dense10', graph: g, logits, loss };
  });
}

/** The CNN trained with Adam. */
export function cnn(learningRate = 2e-3): Model {
  const f = cnnForward();
  return { ...f, train: new Adam({ learningRate }).minimize(f.loss) };
}
