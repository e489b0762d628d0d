import { ClusterSession, Graph, RemoteCluster, randomNormal, ringAllReduce, slice, sum } from 'kiln';
import { startLocalWorkers } from '../src/workers.js';

const n = Number(process.argv[2] ?? 4);
const mib = Number(process.argv[3] ?? 1);
const cluster = await RemoteCluster.listen({ workers: n, token: 't', log: () => {} }, (url) => startLocalWorkers(url, 't', n));
const g = new Graph();
const length = (mib * 2 ** 20) / 4;
const values = cluster.names.map((d, r) => g.onDevice(d, () => g.variable(`v${r}`, randomNormal(g, [length], { seed: r + 1 }))));
const sums = ringAllReduce(g, values, cluster.names);
const probe = g.onDevice(cluster.names[0]!, () => sum(slice(sums[0]!, [0], [1])));
const session = new ClusterSession(g, cluster);
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  await session.run(probe);
  console.log(`run ${i}: ${(performance.now() - t0).toFixed(1)} ms`);
}
await cluster.close();
process.exit(0);
