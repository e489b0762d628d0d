import {
  Adam,
  add,
  type Cluster,
  ClusterSession,
  dataParallel,
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
  shardBatch,
  sum,
  tensor,
} from 'kiln-tensor';

/** A small classifier and its data-parallel training, the same on whatever cluster it is given. */

export function forward(hidden = 16) {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 20], 'x');
  const y = g.placeholder('float32', [null, 3], 'y');
  const dense = (input: typeof x, units: number, seed: number, name: string) =>
    g.scope(name, () => {
      const w = g.variable('w', heNormal(g, [input.shape[1] as number, units], { seed }));
      const b = g.variable('b', tensor(g, new Array(units).fill(0.01), [units]));
      return add(matmul(input, w), b);
    });
  // Variables of differently sized models get different names: sessions on one cluster share
  // its workers' variables by name.
  const logits = g.scope(`h${hidden}`, () => dense(relu(dense(x, hidden, 1, 'd1')), 3, 2, 'd2'));
  g.output('loss', neg(mean(sum(mul(y, logSoftmax(logits)), -1))));
  return g;
}

export function batch(rows: number, seed: number) {
  const rng = new Prng(seed);
  const x = Float32Array.from({ length: rows * 20 }, () => rng.normal());
  const y = new Float32Array(rows * 3);
  for (let i = 0; i < rows; i++) y[i * 3 + rng.int(0, 2)] = 1;
  return { x: new HostTensor('float32', [rows, 20], x), y: new HostTensor('float32', [rows, 3], y) };
}

/** The same data-parallel training, on whatever cluster it is given. */
export async function train(cluster: Cluster, steps: number) {
  const dp = dataParallel(forward(), {
    devices: [...cluster.names],
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.01 }),
  });
  const session = new ClusterSession(dp.graph, cluster);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++)
    losses.push(
      (await session.run(dp.loss, shardBatch(batch(12, step), dp), { targets: dp.train })).data[0]!,
    );
  return { dp, session, losses, variables: await session.variables() };
}
