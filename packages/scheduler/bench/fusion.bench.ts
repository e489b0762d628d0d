/**
 * Elementwise fusion: chains of 8 elementwise ops on 4M float32, run eagerly (8 dispatches, 8
 * loops, 8 fresh 16 MB outputs) and through `compile(fn)`, whose optimize pipeline fuses each chain
 * into one `fused` node that the CPU device runs as a single generated loop. For reference, the
 * same traced graph unoptimized is compiled as one executable of 8 kernels on preallocated buffers:
 * the best compiling could do without fusion. Two chains:
 *
 *   arithmetic      y = (x * 1.5 + 0.5) * x - square(x) * 0.25 - abs(x)
 *                   (mul add mul square mul sub abs sub): memory-bound, what fusion is for
 *   transcendental  y = tanh(x * 1.5 + 0.5) * exp(-square(x)) - x
 *                   (mul add tanh square neg exp mul sub): Math.tanh and Math.exp dominate, and
 *                   fusion cannot make them cheaper
 *
 * Timed per call, the result disposed (the CPU device computes at dispatch; reading the result back
 * would add the same 16 MB copy to every row). Same process, interleaved rounds, medians; results
 * are checked to agree bit for bit before anything is timed.
 *
 *   npm run bench:fusion -w packages/scheduler      (npm run bench runs it after compile.bench.ts)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { abs, add, exp, formatPassReport, mul, neg, type PassReport, square, sub, tanh } from '@kiln/ir';
import { compile, randomNormal, type Tensor, tidy, trace } from '@kiln/scheduler';
import { Bench } from 'tinybench';
import { cpuDevice, kernelsOnly, median } from './harness.js';

const device = await cpuDevice({ makeDefault: true });

const N = 4 * 1024 * 1024;
const OPS = 8;
const GOAL = 3;

const CHAINS: Record<string, (x: Tensor) => Tensor> = {
  arithmetic: (x) => sub(sub(mul(add(mul(x, 1.5), 0.5), x), mul(square(x), 0.25)), abs(x)),
  transcendental: (x) => sub(mul(tanh(add(mul(x, 1.5), 0.5)), exp(neg(square(x)))), x),
};

interface Row {
  chain: string;
  eagerMs: number;
  unfusedMs: number;
  fusedMs: number;
  /** eager / fused: the goal's ratio. */
  speedup: number;
  unfusedSpeedup: number;
  goalMet: boolean;
  fusion: string;
  samples: number;
}

const x = randomNormal([N], { seed: 42 });
const rows: Row[] = [];
const reports: Record<string, readonly PassReport[]> = {};

for (const [name, chain] of Object.entries(CHAINS)) {
  const compiled = compile(chain, { name });
  // What the pipeline did, and that fused and eager agree, before anything is timed.
  const fn = trace(chain, x).toFunction();
  const report = fn.optimizations;
  fn.dispose();
  reports[name] = report;
  const fusion = report.find((r) => r.pass === 'elementwise fusion')?.detail ?? '';
  if (fusion !== `1 group, ${OPS} ops`)
    throw new Error(`${name}: not fused into one group:\n${formatPassReport(report)}`);
  const a = tidy(() => chain(x).dataSync());
  const b = tidy(() => compiled(x).dataSync());
  for (let i = 0; i < N; i++) {
    if (!Object.is(a[i], b[i]))
      throw new Error(`${name}: eager and fused differ at ${i}: ${a[i]} vs ${b[i]}`);
  }

  const tasks = {
    eager: () => tidy(() => void chain(x)),
    fused: () => tidy(() => void compiled(x)),
    unfused: kernelsOnly(device, chain, x),
  };
  const samples = { eager: [] as number[], fused: [] as number[], unfused: [] as number[] };
  for (let round = 0; round < 6; round++) {
    const bench = new Bench({
      iterations: 5,
      time: 0,
      warmupIterations: 2,
      warmupTime: 0,
      retainSamples: true,
      throws: true,
    });
    const order =
      round % 2 ? (['unfused', 'fused', 'eager'] as const) : (['eager', 'fused', 'unfused'] as const);
    for (const task of order) bench.add(task, tasks[task]);
    for (const task of bench.runSync()) {
      const result = task.result;
      if (!('latency' in result) || !result.latency.samples) throw new Error(`${task.name}: no samples`);
      samples[task.name as keyof typeof samples].push(...result.latency.samples);
    }
  }
  const eagerMs = median(samples.eager);
  const fusedMs = median(samples.fused);
  const unfusedMs = median(samples.unfused);
  rows.push({
    chain: name,
    eagerMs,
    unfusedMs,
    fusedMs,
    speedup: eagerMs / fusedMs,
    unfusedSpeedup: eagerMs / unfusedMs,
    goalMet: eagerMs / fusedMs >= GOAL,
    fusion,
    samples: samples.fused.length,
  });
}

console.log(
  `\nElementwise chains of ${OPS} ops on ${N} float32: median ms per call, CPU device, one thread\n`,
);
console.log(
  '| chain | eager ms | compiled, unfused ms | compiled with fusion ms | eager / unfused | eager / fused | goal >= 3x |',
);
console.log(
  '| ----- | -------: | -------------------: | ----------------------: | --------------: | ------------: | ---------- |',
);
for (const r of rows) {
  console.log(
    `| ${r.chain} | ${r.eagerMs.toFixed(1)} | ${r.unfusedMs.toFixed(1)} | ${r.fusedMs.toFixed(1)} | ${r.unfusedSpeedup.toFixed(2)}x | ${r.speedup.toFixed(2)}x | ${r.goalMet ? 'met' : 'not met'} |`,
  );
}
console.log(
  `\n(${rows[0]!.samples} samples per cell; the fusion pass reported "${rows[0]!.fusion}" for each chain)`,
);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
const out = new URL('../bench-results/fusion.json', import.meta.url);
writeFileSync(
  out,
  `${JSON.stringify(
    {
      bench: 'fusion',
      date: new Date().toISOString(),
      node: process.version,
      statistic: 'median ms per call',
      elements: N,
      ops: OPS,
      goal: `fused >= ${GOAL}x faster than eager`,
      rows,
      reports,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${out.pathname}`);
