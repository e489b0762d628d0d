import { add, Graph, matmul, randomNormal, relu, softmax, tensor } from 'kiln-tensor';

/**
 * Two dense layers, declared TensorFlow 1.x style: a placeholder with an unknown batch size,
 * variables initialised from the counter-based RNG, and named outputs a loader can fetch.
 */
export function buildModel(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'features');
  const dense = (input: typeof x, units: number, seed: number, name: string) =>
    g.scope(name, () => {
      const fanIn = input.shape[1] as number;
      const w = g.variable('w', randomNormal(g, [fanIn, units], { seed, stddev: Math.sqrt(2 / fanIn) }));
      const b = g.variable('b', tensor(g, new Array(units).fill(0.01), [units]));
      return add(matmul(input, w), b);
    });
  const hidden = relu(dense(x, 16, 1, 'dense1'));
  const logits = dense(hidden, 3, 2, 'dense2');
  g.output('logits', logits);
  g.output('probabilities', softmax(logits));
  return g;
}
