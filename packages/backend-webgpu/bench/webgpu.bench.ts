/**
 * backend-webgpu against TensorFlow.js's WebGPU backend on the same adapter, and against kiln's
 * CPU device, in one run: n x n matmul (n = 256, 512, 1024, 2048; c = a @ b read back) and the MNIST
 * MLP training step (batch 128). Prints median tables with the ratios and writes
 * bench-results/webgpu.json. A column whose implementation cannot run here says why.
 *
 *   npm run bench -w packages/backend-webgpu
 *   KILN_BENCH_SIZES=256,512 npm run bench -w packages/backend-webgpu   # fewer sizes
 *
 * On lavapipe (Mesa's CPU Vulkan) absolute figures mean little; the ratio to tfjs-webgpu on the
 * same adapter is the figure that does.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { CpuDevice } from '@kiln/backend-cpu';
import type { Device } from '@kiln/ir';
import { type Candidate, compare } from './compare.js';
import { kilnWebGpuDevice } from './kiln-webgpu.js';
import { kilnMatmul, type MatmulCase, matmulInputs, tfjsMatmul } from './matmul.js';
import { relativeError } from './measure.js';
import { BATCH, kilnTrainStep, mlpProblem, type TrainStepCase, tfjsTrainStep } from './mlp.js';
import { benchGpu } from './node-gpu.js';
import { Outcomes } from './outcomes.js';
import { type Impl, printTable, type Row } from './table.js';
import { type Tf, tfjsWebGpu } from './tfjs-webgpu.js';

const SIZES = (process.env.KILN_BENCH_SIZES ?? '256,512,1024,2048').split(',').map(Number);
/** Fewer calls per round for the big sizes: one 2048 matmul takes seconds on a CPU adapter. */
const ITERATIONS: Readonly<Record<number, number>> = { 256: 15, 512: 6, 1024: 3, 2048: 2 };

const found = await benchGpu();
const node = 'reason' in found ? null : found;
const cpu = new CpuDevice({ name: 'cpu:0' });
const webgpu: Device | { reason: string } = 'reason' in found ? found : await kilnWebGpuDevice(found.gpu);
const tf: Tf | { reason: string } = 'reason' in found ? found : await tfjsWebGpu();
const missing: Partial<Record<Impl, string>> = {};
if ('reason' in webgpu) missing['kiln-webgpu'] = webgpu.reason;
if ('reason' in tf) missing['tfjs-webgpu'] = tf.reason;

const outcomes = new Outcomes(missing);

console.log(`\nadapter: ${node?.adapter ?? `none: ${'reason' in found ? found.reason : ''}`}`);
for (const [impl, reason] of Object.entries(missing)) console.log(`${impl}: not run: ${reason}`);

// Every implementation's first result is checked against kiln-cpu's before it is timed. A column
// that cannot run (a missing kernel, say) is left empty with the reason; a wrong result also fails
// the run.
const matmulRows: Row[] = [];
for (const n of SIZES) {
  const { a, b } = matmulInputs(n);
  const reference = kilnMatmul(cpu, n, a, b);
  const want = await reference.run();
  reference.dispose();
  const candidate = (c: MatmulCase): Candidate => ({
    run: c.run,
    check: async () => relativeError(await c.run(), want),
    dispose: c.dispose,
  });
  const cells = await compare(
    `matmul ${n}`,
    {
      'kiln-webgpu': 'reason' in webgpu ? null : () => candidate(kilnMatmul(webgpu, n, a, b)),
      'tfjs-webgpu': 'reason' in tf ? null : () => candidate(tfjsMatmul(tf, n, a, b)),
      'kiln-cpu': () => candidate(kilnMatmul(cpu, n, a, b)),
    },
    outcomes,
    {
      iterations: ITERATIONS[n] ?? 3,
      timeMs: 500,
      warmup: 1,
      rounds: 2,
      rate: (ms) => (2 * n ** 3) / (ms * 1e6),
    },
  );
  matmulRows.push({ label: String(n), cells });
}

// Training: the first losses agree (same data, same initial weights) before anything is timed.
const problem = await mlpProblem(cpu);
const reference = kilnTrainStep(cpu, problem);
const firstLoss = await reference.step();
await reference.close();
const trainer = (s: TrainStepCase): Candidate => ({
  run: s.step,
  check: async () => Math.abs((await s.step()) - firstLoss) / Math.max(1, Math.abs(firstLoss)),
  dispose: s.close,
});
const trainCells = await compare(
  'training step',
  {
    'kiln-webgpu': 'reason' in webgpu ? null : () => trainer(kilnTrainStep(webgpu, problem)),
    'tfjs-webgpu': 'reason' in tf ? null : () => trainer(tfjsTrainStep(tf, problem)),
    'kiln-cpu': () => trainer(kilnTrainStep(cpu, problem)),
  },
  outcomes,
  { iterations: 10, timeMs: 1000, warmup: 3, rounds: 2, rate: (ms) => (BATCH * 1000) / ms },
);

console.log('\nMatmul n x n float32, c = a @ b read back to the host: median ms (GFLOP/s)\n');
printTable('n', matmulRows, (c) => `${c.medianMs.toFixed(2)} (${c.rate.toFixed(1)})`);
console.log(
  `\nTraining step, MLP 784-256-256-10, batch ${BATCH}, SGD, loss read back: median ms (samples/s)\n`,
);
const trainRows: Row[] = [{ label: 'step', cells: trainCells }];
printTable('', trainRows, (c) => `${c.medianMs.toFixed(1)} (${c.rate.toFixed(0)})`);
console.log('\nRatios are throughputs: above 1 means kiln-webgpu is faster.');
for (const line of outcomes.failures) console.log(`not measured: ${line}`);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/webgpu.json', import.meta.url),
  `${JSON.stringify(
    {
      bench: 'webgpu',
      date: new Date().toISOString(),
      node: process.version,
      adapter: node?.adapter ?? null,
      missing,
      failures: outcomes.failures,
      matmul: matmulRows,
      train: trainRows,
    },
    null,
    2,
  )}\n`,
);
if (!('reason' in webgpu)) await webgpu.dispose();
// Dawn keeps its instance alive with handles of its own; the results are written, so leave.
process.exit(outcomes.wrong ? 1 : 0);
