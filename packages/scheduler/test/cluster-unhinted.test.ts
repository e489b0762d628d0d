import { CpuDevice } from '@kiln/backend-cpu';
import {
  Adam,
  add,
  Graph,
  HostTensor,
  matmul,
  mean,
  Prng,
  randomNormal,
  relu,
  sparseSoftmaxCrossEntropy,
} from '@kiln/ir';
import { ClusterSession, Session, ThreadPool } from '@kiln/scheduler';
import { afterEach, describe, expect, it } from 'vitest';

/** No device scopes anywhere: the placer spreads the layers, and Adam adds slot variables. */
function model() {
  const g = new Graph();
  const x = g.placeholder('float32', [16, 12], 'x');
  const labels = g.placeholder('int32', [16], 'labels');
  const w1 = g.variable('w1', randomNormal(g, [12, 10], { seed: 1, stddev: 0.3 }));
  const w2 = g.variable('w2', randomNormal(g, [10, 4], { seed: 2, stddev: 0.3 }));
  const loss = mean(sparseSoftmaxCrossEntropy(matmul(relu(add(matmul(x, w1), 0.1)), w2), labels));
  return { g, loss, train: new Adam({ learningRate: 0.01 }).minimize(loss) };
}

function feeds(step: number) {
  const rng = new Prng(10 + step);
  return {
    x: new HostTensor(
      'float32',
      [16, 12],
      Float32Array.from({ length: 192 }, () => rng.normal()),
    ),
    labels: new HostTensor(
      'int32',
      [16],
      Int32Array.from({ length: 16 }, () => rng.int(0, 3)),
    ),
  };
}

describe('a graph with no device scopes on two workers', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('keeps every variable, and the assigns that initialize it, on the worker it was placed on', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
    const cluster = model();
    const session = new ClusterSession(cluster.g, pool);
    const local = model();
    const reference = new Session(local.g, { device: new CpuDevice() });
    for (let step = 0; step < 4; step++) {
      const [got, want] = await Promise.all([
        session.run(cluster.loss, feeds(step), { targets: cluster.train }),
        reference.run(local.loss, feeds(step), { targets: local.train }),
      ]);
      expect(got.data[0]!).toBeCloseTo(want.data[0]!, 4);
    }
    // The layers did spread: both workers hold variables.
    const homes = new Set([...(await session.variables()).keys()].map((name) => pool!.home(name)));
    expect(homes).toEqual(new Set(['worker:0', 'worker:1']));
  });
});
