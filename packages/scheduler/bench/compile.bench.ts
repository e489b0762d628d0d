/**
 * Eager vs compiled: the forward pass of an MLP 784-256-256-10 at batch 1, 32 and 256, both on the
 * CPU device in this process. Eager dispatches seven ops per call (each: attribute parsing, shape
 * inference, a cache lookup, output allocation); compiled runs one executable. The figure is the
 * per-call time and the ratio eager / compiled; medians over interleaved rounds.
 *
 *   npm run bench -w packages/scheduler
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { add, matmul, relu, softmax } from '@kiln/ir';
import { compile, randomNormal, type Tensor, tidy } from '@kiln/scheduler';
import { Bench } from 'tinybench';
import { cpuDevice, kernelsOnly, median } from './harness.js';

const device = await cpuDevice({ makeDefault: true });

const layer = (n: number, m: number, seed: number) => ({
  w: randomNormal([n, m], { seed, stddev: Math.sqrt(2 / n) }),
  b: randomNormal([m], { seed: seed + 100, stddev: 0.01 }),
});
const l1 = layer(784, 256, 1);
const l2 = layer(256, 256, 2);
const l3 = layer(256, 10, 3);

function forward(x: Tensor): Tensor {
  const h1 = relu(add(matmul(x, l1.w), l1.b));
  const h2 = relu(add(matmul(h1, l2.w), l2.b));
  return softmax(add(matmul(h2, l3.w), l3.b));
}
const compiled = compile(forward);

interface Row {
  batch: number;
  eagerUs: number;
  compiledUs: number;
  /** The same graph's executable run on preallocated buffers: kernel time, no dispatch at all. */
  kernelsUs: number;
  ratio: number;
  /** Time above the kernels: what eager dispatch and a compiled call each add per call. */
  eagerOverheadUs: number;
  compiledOverheadUs: number;
  maxAbsDiff: number;
}

const rows: Row[] = [];
for (const batch of [1, 32, 256]) {
  const x = randomNormal([batch, 784], { seed: 42 });
  // Same work: compiled and eager agree before anything is timed.
  const a = forward(x).dataSync();
  const b = compiled(x).dataSync();
  const maxAbsDiff = Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  if (!(maxAbsDiff < 1e-5)) throw new Error(`batch ${batch}: eager and compiled differ by ${maxAbsDiff}`);

  const samples = { eager: [] as number[], compiled: [] as number[], kernels: [] as number[] };
  const kernels = kernelsOnly(device, forward, x);
  const time = batch === 256 ? 300 : 200;
  for (let round = 0; round < 4; round++) {
    const bench = new Bench({ time, warmup: true, retainSamples: true, throws: true });
    const tasks = {
      eager: () => tidy(() => forward(x).dataSync()),
      compiled: () => tidy(() => compiled(x).dataSync()),
      kernels,
    };
    const order =
      round % 2 ? (['kernels', 'compiled', 'eager'] as const) : (['eager', 'compiled', 'kernels'] as const);
    for (const name of order) bench.add(name, tasks[name]);
    for (const task of bench.runSync()) {
      const result = task.result;
      if (!('latency' in result) || !result.latency.samples) throw new Error(`${task.name}: no samples`);
      samples[task.name as keyof typeof samples].push(...result.latency.samples);
    }
  }
  const eagerUs = median(samples.eager) * 1000;
  const compiledUs = median(samples.compiled) * 1000;
  const kernelsUs = median(samples.kernels) * 1000;
  rows.push({
    batch,
    eagerUs,
    compiledUs,
    kernelsUs,
    ratio: eagerUs / compiledUs,
    eagerOverheadUs: eagerUs - kernelsUs,
    compiledOverheadUs: compiledUs - kernelsUs,
    maxAbsDiff,
  });
  x.dispose();
}

console.log('\nMLP 784-256-256-10 forward, eager vs compiled (median µs per call, CPU device, one thread)\n');
console.log(
  '| batch | eager µs | compiled µs | eager / compiled | kernels only µs | eager overhead µs | compiled overhead µs |',
);
console.log(
  '| ----: | -------: | ----------: | ---------------: | --------------: | ----------------: | -------------------: |',
);
for (const r of rows) {
  console.log(
    `| ${r.batch} | ${r.eagerUs.toFixed(1)} | ${r.compiledUs.toFixed(1)} | ${r.ratio.toFixed(2)}x | ${r.kernelsUs.toFixed(1)} | ${r.eagerOverheadUs.toFixed(1)} | ${r.compiledOverheadUs.toFixed(1)} |`,
  );
}
console.log(
  '\n(overhead = per-call time above the kernels-only run of the same executable; includes reading the result)',
);
console.log(`\ncompile stats: ${JSON.stringify(compiled.stats)}`);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
const out = new URL('../bench-results/compile.json', import.meta.url);
writeFileSync(
  out,
  `${JSON.stringify({ bench: 'compile', date: new Date().toISOString(), node: process.version, statistic: 'median µs per call', rows }, null, 2)}\n`,
);
console.log(`wrote ${out.pathname}`);
