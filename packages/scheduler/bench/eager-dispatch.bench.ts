/**
 * Eager dispatch: a 1-element add on the CPU device, its result disposed at once or inside tidy,
 * against TensorFlow.js's cpu backend doing the same, in this process, medians of interleaved
 * rounds of 100,000 ops. Goal: <= 1 µs per op both ways. The op is too small for its kernel to
 * matter: this is the cost of the dispatch (cache lookup, result allocation, accounting, disposal).
 *
 *   npm run bench:eager -w packages/scheduler
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { tensor, tidy } from '@kiln/scheduler';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { Bench } from 'tinybench';
import { cpuDevice, median } from './harness.js';

const OPS = 100_000;
await cpuDevice({ makeDefault: true });
tf.enableProdMode();
await tf.setBackend('cpu');
const [one, two] = [tensor([1]), tensor([2])];
const [a, b] = [tf.tensor([1]), tf.tensor([2])];
const loops: Record<string, () => void> = {
  'kiln, dispose': () => {
    for (let i = 0; i < OPS; i++) one.add(two).dispose();
  },
  'kiln, in tidy': () => {
    for (let i = 0; i < OPS; i++) tidy(() => void one.add(two));
  },
  'tfjs-cpu, dispose': () => {
    for (let i = 0; i < OPS; i++) tf.add(a, b).dispose();
  },
  'tfjs-cpu, in tidy': () => {
    for (let i = 0; i < OPS; i++) tf.tidy(() => void tf.add(a, b));
  },
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(loops).map((k) => [k, []]));
for (let round = 0; round < 5; round++) {
  const bench = new Bench({
    iterations: 5,
    warmupIterations: 2,
    time: 0,
    warmupTime: 0,
    retainSamples: true,
  });
  const names = Object.keys(loops);
  for (const name of round % 2 ? names.reverse() : names) bench.add(name, loops[name]!);
  await bench.run();
  for (const task of bench.tasks) {
    const r = task.result;
    if (r && 'latency' in r && r.latency.samples) samples[task.name]!.push(...r.latency.samples);
  }
}
const rows = Object.entries(samples).map(([setup, ms]) => ({ setup, usPerOp: (median(ms) * 1000) / OPS }));
console.table(rows.map((r) => ({ setup: r.setup, 'µs per op': r.usPerOp.toFixed(3) })));
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `medians; ${cpu} (${cpus().length} cores), Node ${process.version}; goal: kiln <= 1 µs both ways`,
);
mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/eager-dispatch.json', import.meta.url),
  `${JSON.stringify({ bench: 'eager-dispatch', date: new Date().toISOString(), cpu, node: process.version, ops: OPS, rows }, null, 2)}\n`,
);
