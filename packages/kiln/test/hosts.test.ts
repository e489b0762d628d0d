import { RemoteCluster, ThreadPool } from 'kiln-tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Hosts, hosts } from './netns.js';
import { train } from './training.js';
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
      const onHosts = (await train(cluster, 4)).variables;
      const pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
      try {
        const onThreads = (await train(pool, 4)).variables;
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
