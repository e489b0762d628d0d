/**
 * Worker threads: (1) the dispatch overhead of one partition run on a thread — a run of a tiny
 * graph through the coordinator and a worker, against the same graph run by an in-process Session
 * — and (2) the data-parallel speedup of a training step of the MLP 784-256-256-10 at batch 256
 * (Adam) on 2 threads against 1 thread, with the update replicated and sharded (ZeRO-1), and
 * with 16 fixed micro-batches (`microBatches`: the same bits on any worker count, at a price), the
 * in-process Session alongside. Interleaved rounds,
 * medians; the machine is shared, so the ratios are the figures.
 *
 *   npm run bench:threads -w packages/scheduler
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  Adam,
  add,
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
} from '@kiln/ir';
import { ClusterSession, Session, ThreadPool } from '@kiln/scheduler';
import { Bench } from 'tinybench';
import { cpuDevice, median } from './harness.js';

const CPU = { module: '@kiln/backend-cpu' };

async function timeTasks(tasks: Record<string, () => Promise<unknown>>, rounds = 3, ms = 1500) {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(tasks).map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    const names = Object.keys(tasks);
    for (const name of round % 2 ? names.reverse() : names) {
      const bench = new Bench({ time: ms, warmup: true, retainSamples: true, throws: true });
      bench.add(name, tasks[name]!);
      await bench.run();
      const result = bench.tasks[0]!.result;
      if (!('latency' in result) || !result.latency.samples) throw new Error(`${name}: no samples`);
      for (const s of result.latency.samples) samples[name]!.push(s);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

// (1) Dispatch overhead: one add on [16] floats; one partition on one worker, and a chain of two
// partitions over two workers (each hop a partition run).
const tiny = new Graph();
const tx = tiny.placeholder('float32', [16], 'x');
const one = add(tx, 1);
const hop = tiny.onDevice('worker:1', () =>
  add(
    tiny.onDevice('worker:0', () => add(tx, 2)),
    3,
  ),
);
const tinyFeeds = { x: new HostTensor('float32', [16], new Float32Array(16).fill(1)) };
const pool2 = await ThreadPool.create({ workers: 2, device: CPU });
const cluster = new ClusterSession(tiny, pool2);
const local = new Session(tiny, { device: await cpuDevice() });
const dispatch = await timeTasks({
  'in-process Session': () => local.run(one, tinyFeeds),
  'thread: 1 partition': () => cluster.run(one, tinyFeeds),
  'threads: 2 partitions': () => cluster.run(hop, tinyFeeds),
});
const inProcess = dispatch['in-process Session']!;
const perPartition = {
  single: (dispatch['thread: 1 partition']! - inProcess) * 1000,
  chained: ((dispatch['threads: 2 partitions']! - inProcess) * 1000) / 2,
};

// (2) Data-parallel speedup.
const BATCH = 256;
function forward() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 784], 'x');
  const y = g.placeholder('float32', [null, 10], 'y');
  let h = x;
  const sizes = [784, 256, 256, 10];
  for (let l = 0; l < 3; l++) {
    const w = g.variable(`w${l}`, heNormal(g, [sizes[l]!, sizes[l + 1]!], { seed: l + 1 }));
    const b = g.variable(`b${l}`, tensor(g, new Array(sizes[l + 1]!).fill(0), [sizes[l + 1]!]));
    h = add(matmul(h, w), b);
    if (l < 2) h = relu(h);
  }
  g.output('loss', neg(mean(sum(mul(y, logSoftmax(h)), -1))));
  return g;
}
const rng = new Prng(5);
const yData = new Float32Array(BATCH * 10);
for (let i = 0; i < BATCH; i++) yData[i * 10 + rng.int(0, 9)] = 1;
const batch = {
  x: new HostTensor(
    'float32',
    [BATCH, 784],
    Float32Array.from({ length: BATCH * 784 }, () => rng.next()),
  ),
  y: new HostTensor('float32', [BATCH, 10], yData),
};
const pool1 = await ThreadPool.create({ workers: 1, device: CPU });
async function dataParallelStep(pool: ThreadPool, shardUpdate = false, microBatches?: number) {
  const dp = dataParallel(forward(), {
    devices: pool.names,
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 1e-4 }),
    shardUpdate,
    ...(microBatches === undefined ? {} : { microBatches }),
  });
  const session = new ClusterSession(dp.graph, pool);
  const feeds = shardBatch(batch, dp);
  const step = async () => (await session.run(dp.loss, feeds, { targets: dp.train })).data[0]!;
  return { step, first: await step() };
}
const single = forward();
const singleTrain = new Adam({ learningRate: 1e-4 }).minimize(single.tensor('loss'));
const singleSession = new Session(single, { device: await cpuDevice() });
const inProcessStep = async () => (await singleSession.run('loss', batch, { targets: singleTrain })).data[0]!;
const on1 = await dataParallelStep(pool1);
const on2 = await dataParallelStep(pool2);
const on2Sharded = await dataParallelStep(pool2, true);
const on2Micro = await dataParallelStep(pool2, false, 16);
const firstLocal = await inProcessStep();
// Same work: the first step's loss agrees before anything is timed.
for (const [who, v] of [
  ['1 thread', on1.first],
  ['2 threads', on2.first],
  ['2 threads, sharded update', on2Sharded.first],
  ['2 threads, 16 micro-batches', on2Micro.first],
] as const)
  if (Math.abs(v - firstLocal) > 1e-4)
    throw new Error(`first-step loss differs: in-process ${firstLocal}, ${who} ${v}`);
const training = await timeTasks({
  'in-process Session': inProcessStep,
  '1 worker thread': on1.step,
  '2 worker threads (data parallel)': on2.step,
  '2 worker threads (data parallel, sharded update)': on2Sharded.step,
  '2 worker threads (data parallel, 16 micro-batches)': on2Micro.step,
});
await pool1.close();
await pool2.close();

console.log('\nDispatch overhead per partition run (median of interleaved rounds)\n');
console.log('| case | µs per run |');
console.log('| ---- | ---------: |');
for (const [k, v] of Object.entries(dispatch)) console.log(`| ${k} | ${(v * 1000).toFixed(1)} |`);
console.log(
  `\nOverhead per partition run on a thread: ${perPartition.single.toFixed(1)} µs (one partition), ${perPartition.chained.toFixed(1)} µs (each of two chained partitions)`,
);

console.log(`\nData-parallel training step, MLP 784-256-256-10, batch ${BATCH}, Adam\n`);
console.log('| executor | ms per step | samples/s | vs 1 thread |');
console.log('| -------- | ----------: | --------: | ----------: |');
const base = training['1 worker thread']!;
for (const [k, v] of Object.entries(training))
  console.log(`| ${k} | ${v.toFixed(1)} | ${((BATCH * 1000) / v).toFixed(0)} | ${(base / v).toFixed(2)}x |`);
const speedup = base / training['2 worker threads (data parallel)']!;
const shardedSpeedup = base / training['2 worker threads (data parallel, sharded update)']!;
const microSpeedup = base / training['2 worker threads (data parallel, 16 micro-batches)']!;
console.log(
  `\nSpeedup on 2 threads: ${speedup.toFixed(2)}x (${shardedSpeedup.toFixed(2)}x with the update sharded, ${microSpeedup.toFixed(2)}x with 16 micro-batches)`,
);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/threads.json', import.meta.url),
  `${JSON.stringify(
    {
      bench: 'threads',
      date: new Date().toISOString(),
      node: process.version,
      dispatchMs: dispatch,
      overheadMicrosPerPartition: perPartition,
      trainingStepMs: training,
      dataParallelSpeedup: speedup,
      shardedUpdateSpeedup: shardedSpeedup,
      microBatchesSpeedup: microSpeedup,
    },
    null,
    2,
  )}\n`,
);
