import { CpuDevice } from '@kiln/backend-cpu';
import {
  Adam,
  add,
  conv2d,
  Graph,
  HostTensor,
  matmul,
  maxPool,
  mean,
  Prng,
  randomNormal,
  relu,
  reshape,
  softmaxCrossEntropy,
  tensor,
} from '@kiln/ir';
import { ClusterSession, Session, ThreadPool } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice } from '../src/index.js';

/** An MLP 64-128-10 with Adam, and a seeded batch of it. */
function mlp() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 64], 'x');
  const y = g.placeholder('float32', [null, 10], 'y');
  const w1 = g.variable('w1', randomNormal(g, [64, 128], { seed: 1, stddev: 0.1 }));
  const b1 = g.variable('b1', tensor(g, new Array(128).fill(0), [128]));
  const w2 = g.variable('w2', randomNormal(g, [128, 10], { seed: 2, stddev: 0.1 }));
  const loss = mean(softmaxCrossEntropy(matmul(relu(add(matmul(x, w1), b1)), w2), y));
  return { g, loss, train: new Adam({ learningRate: 0.01 }).minimize(loss) };
}

function batch(step: number) {
  const rng = new Prng(50 + step);
  const labels = Array.from({ length: 32 }, () => rng.int(0, 9));
  const x = Float32Array.from(
    { length: 32 * 64 },
    (_, i) => rng.normal() + (i % 64 === labels[Math.floor(i / 64)]! ? 2 : 0),
  );
  const y = new Float32Array(32 * 10);
  labels.forEach((l, i) => {
    y[i * 10 + l] = 1;
  });
  return { x: new HostTensor('float32', [32, 64], x), y: new HostTensor('float32', [32, 10], y) };
}

async function losses(session: { run: Session['run'] }, model: ReturnType<typeof mlp>, steps: number) {
  const out: number[] = [];
  for (let s = 0; s < steps; s++)
    out.push((await session.run(model.loss, batch(s), { targets: model.train })).data[0]!);
  return out;
}

/** A small CNN on 8x8 images of the same batches: conv 3x3 (same), relu, max pool 2x2, conv (valid), dense. */
function cnn() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 64], 'x');
  const y = g.placeholder('float32', [null, 10], 'y');
  const k1 = g.variable('k1', randomNormal(g, [3, 3, 1, 8], { seed: 3, stddev: 0.3 }));
  const k2 = g.variable('k2', randomNormal(g, [3, 3, 8, 8], { seed: 4, stddev: 0.2 }));
  const w = g.variable('w', randomNormal(g, [2 * 2 * 8, 10], { seed: 5, stddev: 0.2 }));
  const image = reshape(x, [-1, 8, 8, 1]);
  const h1 = maxPool(relu(conv2d(image, k1, { padding: 'same' })), { windowSize: 2 });
  const h2 = conv2d(h1, k2, { padding: 'valid' });
  const loss = mean(softmaxCrossEntropy(matmul(reshape(h2, [-1, 2 * 2 * 8]), w), y));
  return { g, loss, train: new Adam({ learningRate: 0.01 }).minimize(loss) };
}

describe.skipIf(!addon && process.env.KILN_REQUIRE_NATIVE !== '1')('training on backend-native', () => {
  it('trains a CNN as the CPU device does: oneDNN convolutions and native pooling, forward and back', async () => {
    const native = cnn();
    const cpu = cnn();
    const onNative = await losses(new Session(native.g, { device: new NativeDevice() }), native, 30);
    const onCpu = await losses(new Session(cpu.g, { device: new CpuDevice() }), cpu, 30);
    expect(onNative.at(-1)!).toBeLessThan(onNative[0]! * 0.8);
    onNative.forEach((l, i) =>
      expect(Math.abs(l - onCpu[i]!), `step ${i}`).toBeLessThan(1e-3 * Math.max(1, onCpu[i]!)),
    );
  });

  it('follows the CPU device step for step (float32 sums in another order)', async () => {
    const native = mlp();
    const cpu = mlp();
    const onNative = await losses(new Session(native.g, { device: new NativeDevice() }), native, 20);
    const onCpu = await losses(new Session(cpu.g, { device: new CpuDevice() }), cpu, 20);
    expect(onNative.at(-1)!).toBeLessThan(onNative[0]! * 0.8);
    onNative.forEach((l, i) =>
      expect(Math.abs(l - onCpu[i]!), `step ${i}`).toBeLessThan(1e-3 * Math.max(1, onCpu[i]!)),
    );
  });

  it('is served by worker threads that load it by module name', async () => {
    const pool = await ThreadPool.create({ workers: 1, device: { module: '@kiln/backend-native' } });
    try {
      const model = mlp();
      const devices = await pool.planningDevices();
      expect(devices[0]!.kind).toBe('native');
      const got = await losses(new ClusterSession(model.g, pool), model, 5);
      const reference = mlp();
      const local = await losses(new Session(reference.g, { device: new NativeDevice() }), reference, 5);
      got.forEach((l, i) => expect(l).toBeCloseTo(local[i]!, 5));
    } finally {
      await pool.close();
    }
  });
});
