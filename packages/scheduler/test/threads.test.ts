import { CpuDevice } from '@kiln/backend-cpu';
import { add, Graph, HostTensor, matmul, mul, Prng, randomNormal, relu, SGD, softmax, sum } from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import { Session } from '../src/session.js';

const CPU = { module: '@kiln/backend-cpu' };

function model() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 16], 'x');
  const w1 = g.variable('w1', randomNormal(g, [16, 32], { seed: 1 }));
  const h = relu(add(matmul(x, w1), 0.1));
  const { logits, loss } = g.onDevice('worker:1', () => {
    const w2 = g.variable('w2', randomNormal(g, [32, 4], { seed: 2 }));
    const logits = softmax(matmul(h, w2));
    return { logits, loss: sum(mul(logits, logits)) };
  });
  const train = new SGD({ learningRate: 0.1 }).minimize(loss);
  return { g, x, logits, loss, train };
}

const input = (rows: number, seed: number) => {
  const rng = new Prng(seed);
  return new HostTensor(
    'float32',
    [rows, 16],
    Float32Array.from({ length: rows * 16 }, () => rng.normal()),
  );
};

describe('thread pool', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 2, device: CPU });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('runs a model split over two worker threads as one thread does', async () => {
    const { g, logits } = model();
    const local = new Session(g, { device: new CpuDevice() });
    const cluster = new ClusterSession(g, pool);
    const x = input(8, 3);
    const expected = await local.run(logits, { x });
    const got = await cluster.run(logits, { x });
    expect(Array.from(got.data)).toEqual(Array.from(expected.data));
  });

  it('reads its feeds when run is called: changing them while the run is under way changes nothing', async () => {
    const { g, logits } = model();
    const cluster = new ClusterSession(g, pool);
    const x = input(8, 4);
    const expected = await new Session(g, { device: new CpuDevice() }).run(logits, { x });
    const pending = cluster.run(logits, { x });
    x.data.fill(100);
    expect(Array.from((await pending).data)).toEqual(Array.from(expected.data));
  });

  it('unloads its partitions and loads them again on the next run; variables stay', async () => {
    const { g, loss, train } = model();
    const cluster = new ClusterSession(g, pool);
    const x = input(8, 21);
    await cluster.run(loss, { x }, { targets: train });
    const before = await cluster.variables();
    await cluster.unload();
    const after = await cluster.variables();
    expect(Array.from(after.get('w2')!.data)).toEqual(Array.from(before.get('w2')!.data));
    const again = await cluster.run(loss, { x }, { targets: train });
    expect(Number.isFinite(again.data[0])).toBe(true);
  });

  it('trains: variables stay on their workers and match single-thread training', async () => {
    const { g, loss, train } = model();
    const local = new Session(g, { device: new CpuDevice() });
    const cluster = new ClusterSession(g, pool);
    for (let step = 0; step < 3; step++) {
      const x = input(8, 10 + step);
      const a = await local.run(loss, { x }, { targets: train });
      const b = await cluster.run(loss, { x }, { targets: train });
      expect(b.data[0]).toBeCloseTo(a.data[0]!, 5);
    }
    const vars = await cluster.variables();
    expect([...vars.keys()]).toEqual(['w1', 'w2']);
    const w2 = (await local.run(g.tensor('w2'))).data;
    expect(Array.from(vars.get('w2')!.data).every((v, i) => Math.abs(v - w2[i]!) < 1e-5)).toBe(true);
  });

  it('runs a large graph over null-device workers, many runs overlapped', async () => {
    const nullPool = await ThreadPool.create({
      workers: 3,
      device: { module: new URL('../src/testing/null-device.ts', import.meta.url).href },
    });
    try {
      // 1,500 matmuls and adds, hinted round-robin in blocks over three workers.
      const g = new Graph();
      const x = g.placeholder('float32', [4, 4], 'x');
      let h = x;
      for (let block = 0; block < 15; block++) {
        g.onDevice(`worker:${block % 3}`, () => {
          const w = g.variable(`w${block}`, randomNormal(g, [4, 4], { seed: block }));
          for (let i = 0; i < 50; i++) h = add(matmul(h, w), h);
        });
      }
      const session = new ClusterSession(g, nullPool);
      const feeds = Array.from({ length: 8 }, (_, k) => ({
        x: new HostTensor('float32', [4, 4], input(1, k).data.subarray(0, 16) as Float32Array),
      }));
      const results = await session.runMany(h, feeds);
      expect(results).toHaveLength(8);
      for (const r of results) expect(r.shape).toEqual([4, 4]);
      const p = await session.plan(h, { x: new HostTensor('float32', [4, 4], new Float32Array(16)) });
      expect(new Set(p.partitions.map((part) => part.device))).toEqual(
        new Set(['worker:0', 'worker:1', 'worker:2']),
      );
      expect(p.partitions.length).toBeGreaterThanOrEqual(15);
    } finally {
      await nullPool.close();
    }
  });
});
