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
  RemoteCluster,
  relu,
  shardBatch,
  sum,
  ThreadPool,
  tensor,
} from 'kiln';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Hosts, hosts } from './netns.js';
import { killAll, startWorker } from './worker-processes.js';

/**
 * Workers on separate hosts: each in a network namespace of its own, joined to the coordinator by
 * a veth pair and a bridge, so every frame crosses a real network interface. The coordinator
 * listens on the bridge's address only (with a token, as off loopback it must).
 */
const TOKEN = 'separate-hosts-test';
let net: Hosts | string;
beforeAll(() => {
  net = hosts(2);
  if (typeof net === 'string') console.log(`separate-hosts test: ${net}`);
});
afterAll(async () => {
  await killAll();
  if (typeof net !== 'string') net.teardown();
});

function forward() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 20], 'x');
  const y = g.placeholder('float32', [null, 3], 'y');
  const dense = (input: typeof x, units: number, seed: number, name: string) =>
    g.scope(name, () => {
      const w = g.variable('w', heNormal(g, [input.shape[1] as number, units], { seed }));
      const b = g.variable('b', tensor(g, new Array(units).fill(0.01), [units]));
      return add(matmul(input, w), b);
    });
  const logits = dense(relu(dense(x, 16, 1, 'd1')), 3, 2, 'd2');
  g.output('loss', neg(mean(sum(mul(y, logSoftmax(logits)), -1))));
  return g;
}

function batch(rows: number, seed: number) {
  const rng = new Prng(seed);
  const x = Float32Array.from({ length: rows * 20 }, () => rng.normal());
  const y = new Float32Array(rows * 3);
  for (let i = 0; i < rows; i++) y[i * 3 + rng.int(0, 2)] = 1;
  return { x: new HostTensor('float32', [rows, 20], x), y: new HostTensor('float32', [rows, 3], y) };
}

async function train(cluster: Cluster) {
  const dp = dataParallel(forward(), {
    devices: [...cluster.names],
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.01 }),
  });
  const session = new ClusterSession(dp.graph, cluster);
  for (let step = 0; step < 4; step++)
    await session.run(dp.loss, shardBatch(batch(12, step), dp), { targets: dp.train });
  return session.variables();
}

describe('workers on separate hosts', () => {
  it('train data-parallel over a real network interface to the weights of two threads', async (context) => {
    if (typeof net === 'string') return context.skip();
    const h = net;
    const cluster = await RemoteCluster.listen(
      { workers: 2, host: h.coordinator, token: TOKEN, log: () => {} },
      (url) => {
        for (const w of h.workers) startWorker(url, TOKEN, [], w.namespace);
      },
    );
    try {
      expect(cluster.url.startsWith(`ws://${h.coordinator}:`)).toBe(true);
      // Each worker reached the coordinator from its own namespace's address.
      const peers = cluster.traffic().map((t) => t.peer.replace(/^worker at /, '').replace(/:[0-9]+$/, ''));
      expect(peers.sort()).toEqual(h.workers.map((w) => w.address).sort());
      const onHosts = await train(cluster);
      const pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
      try {
        const onThreads = await train(pool);
        for (const [name, value] of onThreads)
          expect(Array.from(onHosts.get(name)!.data), name).toEqual(Array.from(value.data));
      } finally {
        await pool.close();
      }
    } finally {
      await cluster.close();
    }
  }, 120_000);
});
