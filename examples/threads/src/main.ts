import { loadMnist } from '@kiln/example-mnist/data';
import { formatPlan, ThreadPool } from 'kiln-tensor';
import { placementSummary, trainDataParallel } from './data-parallel.js';
import { trainPipeline } from './pipeline.js';

/**
 * MNIST on worker threads: the MLP data-parallel on 1 and then 2 threads (same batches, same
 * updates), printing the speedup and where everything ran; then the CNN pipeline-parallel over 2
 * threads, printing the schedule of one step. `--quick` runs a few steps only.
 */
const quick = process.argv.includes('--quick');
const verbose = process.argv.includes('--verbose');
const log = (line: string) => process.stderr.write(`${line}\n`);
const { train, test } = loadMnist();

console.log('== Data parallel: MLP 784-256-256-10, batch 256, Adam ==');
const steps = quick ? 6 : 60;
// The cluster is made here; the training code runs unchanged on threads or on machines.
const onThreads = async <T>(workers: number, work: (pool: ThreadPool) => Promise<T>): Promise<T> => {
  const pool = await ThreadPool.create({ workers });
  try {
    return await work(pool);
  } finally {
    await pool.close();
  }
};
const one = await onThreads(1, (pool) =>
  trainDataParallel(pool, train, test, { steps, batchSize: 256, log }),
);
const two = await onThreads(2, (pool) =>
  trainDataParallel(pool, train, test, { steps, batchSize: 256, log }),
);
for (const r of [one, two]) {
  console.log(
    `${r.workers} thread(s): ${r.samplesPerSecond.toFixed(0)} samples/s, final loss ${r.finalLoss.toFixed(4)}, held-out accuracy ${(100 * r.accuracy).toFixed(2)}%`,
  );
}
console.log(`speedup on 2 threads: ${(two.samplesPerSecond / one.samplesPerSecond).toFixed(2)}x`);
console.log('placement on 2 threads:');
console.log(placementSummary(two.plan));
if (verbose) console.log(formatPlan(two.plan));

console.log('\n== Pipeline parallel: CNN, convolutions on worker:0, dense + loss on worker:1 ==');
const piped = await onThreads(2, (pool) =>
  trainPipeline(pool, train, test, { steps: quick ? 3 : 40, batchSize: 128, microBatches: 4, log }),
);
console.log(
  `${piped.samplesPerSecond.toFixed(0)} samples/s, held-out accuracy ${(100 * piped.accuracy).toFixed(2)}%`,
);
console.log('schedule of the last step (each digit is a micro-batch):');
console.log(piped.schedule);
