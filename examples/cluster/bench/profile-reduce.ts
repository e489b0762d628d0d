import {
  ClusterSession,
  Graph,
  RemoteCluster,
  randomNormal,
  ringAllReduce,
  slice,
  sum,
  type TraceEntry,
} from 'kiln';
import { startLocalWorkers } from '../src/workers.js';

const TOKEN = 'p';
const workers = Number(process.argv[2] ?? 2);
const mib = Number(process.argv[3] ?? 16);
const cluster = await RemoteCluster.listen({ workers, token: TOKEN, log: () => {} }, (url) =>
  startLocalWorkers(url, TOKEN, workers),
);
const g = new Graph();
const length = (mib * 2 ** 20) / 4;
const values = cluster.names.map((d, r) =>
  g.onDevice(d, () => g.variable(`v${r}`, randomNormal(g, [length], { seed: r + 1 }))),
);
const sums = ringAllReduce(g, values, cluster.names);
const probe = g.onDevice(cluster.names[0]!, () => sum(slice(sums[0]!, [0], [1])));
const session = new ClusterSession(g, cluster);
await session.run(probe);
for (let i = 0; i < 4; i++) {
  const trace: TraceEntry[] = [];
  const t0 = performance.now();
  await session.run(probe, {}, { trace });
  const total = performance.now() - t0;
  console.log(`run ${i}: ${total.toFixed(1)} ms`);
  const origin = Math.min(...trace.map((e) => e.start));
  for (const e of trace.sort((a, b) => a.start - b.start))
    console.log(
      `  ${e.worker} ${e.partition.padEnd(16)} sent +${(e.start - origin).toFixed(1)} back +${(e.end - origin).toFixed(1)} worker ${(e.seconds * 1000).toFixed(1)} ms`,
    );
}
await cluster.close();
process.exit(0);
