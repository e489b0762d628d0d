/**
 * `relu(x * 1.5 + 0.5)` on 1M and 16M float32: kiln eager (three ops, three loops), kiln compiled
 * (`compile(fn)` fuses the chain into one loop: WebAssembly SIMD where the runtime has it), a plain
 * JavaScript loop doing the same (the floor a generated loop should reach), and TensorFlow.js's
 * wasm backend (three ops, XNNPACK). Effective GB/s counts what the chain must move: x read once,
 * y written once (8 bytes an element). Goal: compiled >= the plain loop, and >= 2x it with
 * WebAssembly SIMD. Same process, interleaved rounds, medians; every side's result is checked
 * against the plain loop's first.
 *
 *   npm run bench:relu -w packages/scheduler
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { add, mul, relu } from '@kiln/ir';
import { compile, type Tensor, tensor, tidy } from '@kiln/scheduler';
// The full bundle, as the other tfjs peers here: its wasm backend registers with it.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { Bench } from 'tinybench';
import { cpuDevice, median } from './harness.js';

await cpuDevice({ makeDefault: true });
tf.enableProdMode();
setWasmPaths(
  `${join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')), '/')}`,
);
await tf.setBackend('wasm');
await tf.ready();

const chain = (x: Tensor) => relu(add(mul(x, 1.5), 0.5));
const compiled = compile(chain, { name: 'relu chain' });

/** The plain loop: what one pass over the data costs in JavaScript. */
function plainLoop(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]! * 1.5 + 0.5;
    y[i] = Math.max(v, 0);
  }
}

const rows: { n: number; who: string; ms: number; gbPerSecond: number }[] = [];
for (const n of [1 << 20, 1 << 24]) {
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const x = tensor(data, [n]);
  const out = new Float32Array(n);
  const tx = tf.tensor1d(data);
  plainLoop(data, out);
  const check = (who: string, got: ArrayLike<number>) => {
    for (let i = 0; i < n; i++)
      if (Math.abs(got[i]! - out[i]!) > 1e-6 * Math.max(1, Math.abs(out[i]!)))
        throw new Error(`${who} differs from the plain loop at ${i}: ${got[i]} vs ${out[i]}`);
  };
  check(
    'eager',
    tidy(() => chain(x).dataSync()),
  );
  check(
    'compiled',
    tidy(() => compiled(x).dataSync()),
  );
  check(
    'tfjs-wasm',
    tf.tidy(() => tf.relu(tf.add(tf.mul(tx, 1.5), 0.5)).dataSync()),
  );
  const y = new Float32Array(n);
  const tasks: Record<string, () => void> = {
    'kiln eager': () => tidy(() => void chain(x)),
    'kiln compiled': () => tidy(() => void compiled(x)),
    'plain JS loop': () => plainLoop(data, y),
    // dataSync waits for the result, as kiln's CPU device has it at dispatch.
    'tfjs-wasm': () => tf.tidy(() => void tf.relu(tf.add(tf.mul(tx, 1.5), 0.5)).dataSync()),
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(tasks).map((k) => [k, []]));
  for (let round = 0; round < 4; round++) {
    const bench = new Bench({
      iterations: n > 1 << 20 ? 5 : 20,
      warmupIterations: 3,
      time: 0,
      warmupTime: 0,
      retainSamples: true,
    });
    const names = Object.keys(tasks);
    for (const name of round % 2 ? names.reverse() : names) bench.add(name, tasks[name]!);
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r && 'latency' in r && r.latency.samples) samples[task.name]!.push(...r.latency.samples);
    }
  }
  for (const [who, ms] of Object.entries(samples)) {
    const m = median(ms);
    rows.push({ n, who, ms: m, gbPerSecond: (8 * n) / (m / 1e3) / 1e9 });
  }
  x.dispose();
  tx.dispose();
}
const loopMs = (n: number) => rows.find((r) => r.n === n && r.who === 'plain JS loop')!.ms;
console.table(
  rows.map((r) => ({
    floats: r.n === 1 << 20 ? '1M' : '16M',
    side: r.who,
    ms: r.ms.toFixed(2),
    'GB/s': r.gbPerSecond.toFixed(2),
    'vs plain loop': `${(loopMs(r.n) / r.ms).toFixed(2)}x`,
  })),
);
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `medians; ${cpu} (${cpus().length} cores), Node ${process.version}; goal: compiled >= plain loop (>= 2x with WebAssembly SIMD)`,
);
mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/relu-chain.json', import.meta.url),
  `${JSON.stringify({ bench: 'relu-chain', date: new Date().toISOString(), cpu, node: process.version, rows }, null, 2)}\n`,
);
