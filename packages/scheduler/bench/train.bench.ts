/**
 * Training throughput: one SGD step of an MLP 784-256-256-10 at batch 128 (forward, backward,
 * update, and the loss read back), in kiln (a Session running the compiled step) and in
 * TensorFlow.js with its cpu and wasm backends, all in this process on the same data and the same
 * initial weights. Reports training samples/s from the median step time, and the ratios.
 *
 *   npm run bench -w packages/scheduler
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  add,
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
  SGD,
  sum,
  tensor,
} from '@kiln/ir';
import { Session } from '@kiln/scheduler';
// The full bundle: tfjs-core's own Node bundle registers no gradients, which the optimizer needs.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { Bench } from 'tinybench';
import { cpuDevice, median } from './harness.js';

const BATCH = 128;
const SIZES = [784, 256, 256, 10];
const LR = 0.05;

const rng = new Prng(5);
const xData = Float32Array.from({ length: BATCH * 784 }, () => rng.next());
const yData = new Float32Array(BATCH * 10);
for (let i = 0; i < BATCH; i++) yData[i * 10 + rng.int(0, 9)] = 1;

// kiln: the whole step compiled into one program by the Session.
const g = new Graph();
const x = g.placeholder('float32', [BATCH, 784], 'x');
const y = g.placeholder('float32', [BATCH, 10], 'y');
let h = x;
const params: string[] = [];
for (let l = 0; l < 3; l++) {
  const w = g.variable(`w${l}`, heNormal(g, [SIZES[l]!, SIZES[l + 1]!], { seed: l + 1 }));
  const b = g.variable(`b${l}`, tensor(g, new Array(SIZES[l + 1]!).fill(0), [SIZES[l + 1]!]));
  params.push(`w${l}`, `b${l}`);
  h = add(matmul(h, w), b);
  if (l < 2) h = relu(h);
}
const loss = neg(mean(sum(mul(y, logSoftmax(h)), -1)));
const train = new SGD({ learningRate: LR }).minimize(loss);
const session = new Session(g, { device: await cpuDevice() });
const feeds = {
  x: new HostTensor('float32', [BATCH, 784], xData),
  y: new HostTensor('float32', [BATCH, 10], yData),
};
const initial = await session.checkpoint();
const kilnStep = async () => (await session.run(loss, feeds, { targets: train })).data[0]!;

// TensorFlow.js: the same model, weights copied from kiln's initial values.
tf.enableProdMode();
const require = createRequire(import.meta.url);
setWasmPaths(`${join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/')}`);

async function tfjsStep(backend: 'cpu' | 'wasm') {
  await tf.setBackend(backend);
  await tf.ready();
  const vars = params.map((name) => {
    const v = initial.variables[name]!;
    return tf.variable(tf.tensor(Array.from(v.data), [...v.shape]));
  });
  const xs = tf.tensor2d(xData, [BATCH, 784]);
  const ys = tf.tensor2d(yData, [BATCH, 10]);
  const optimizer = tf.train.sgd(LR);
  const f = () => {
    let a: tf.Tensor = xs;
    for (let l = 0; l < 3; l++) {
      a = tf.add(tf.matMul(a, vars[2 * l]!), vars[2 * l + 1]!);
      if (l < 2) a = tf.relu(a);
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(ys, tf.logSoftmax(a)), -1))) as tf.Scalar;
  };
  return () => {
    const l = optimizer.minimize(f, true)!;
    const value = l.dataSync()[0]!;
    l.dispose();
    return value;
  };
}

// Same work: the first step's loss agrees (same weights, same data) before anything is timed.
const first = { kiln: await kilnStep(), cpu: (await tfjsStep('cpu'))(), wasm: (await tfjsStep('wasm'))() };
for (const [k, v] of Object.entries(first)) {
  if (Math.abs(v - first.kiln) > 1e-4 * Math.max(1, Math.abs(first.kiln)))
    throw new Error(`first-step loss differs: kiln ${first.kiln}, ${k} ${v}`);
}

const samples: Record<'kiln' | 'cpu' | 'wasm', number[]> = { kiln: [], cpu: [], wasm: [] };
for (let round = 0; round < 3; round++) {
  for (const who of round % 2 ? (['wasm', 'cpu', 'kiln'] as const) : (['kiln', 'cpu', 'wasm'] as const)) {
    const step = who === 'kiln' ? kilnStep : await tfjsStep(who);
    const bench = new Bench({ time: 1500, warmup: true, retainSamples: true, throws: true });
    bench.add(who, step);
    await bench.run();
    const result = bench.tasks[0]!.result;
    if (!('latency' in result) || !result.latency.samples) throw new Error(`${who}: no samples`);
    samples[who].push(...result.latency.samples);
  }
}

const rows = (['kiln', 'cpu', 'wasm'] as const).map((who) => {
  const ms = median(samples[who]);
  return {
    who: who === 'kiln' ? 'kiln (backend-cpu, compiled step)' : `TensorFlow.js ${who}`,
    ms,
    samplesPerSecond: (BATCH * 1000) / ms,
  };
});
const kiln = rows[0]!.samplesPerSecond;
console.log('\nTraining step, MLP 784-256-256-10, batch 128, SGD (median over interleaved rounds)\n');
console.log('| implementation | ms per step | samples/s | kiln / this |');
console.log('| -------------- | ----------: | --------: | ----------: |');
for (const r of rows)
  console.log(
    `| ${r.who} | ${r.ms.toFixed(1)} | ${r.samplesPerSecond.toFixed(0)} | ${(kiln / r.samplesPerSecond).toFixed(2)}x |`,
  );
console.log(
  `\nGoal: at least 3x TensorFlow.js cpu: ${kiln / rows[1]!.samplesPerSecond >= 3 ? 'met' : 'NOT met'}`,
);
mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/train.json', import.meta.url),
  `${JSON.stringify({ bench: 'train', date: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`,
);
