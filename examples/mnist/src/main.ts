/**
 * The quick start's main job: MNIST training as jobs submitted to an embedded kiln cluster (a
 * coordinator and two worker threads in this process; nothing to start), on the native device where
 * it was built at install and the CPU device otherwise. The digits the `mnist`
 * package ships are converted to safetensors datasets first (10,000 of them, split 8,000 / 2,000
 * with a fixed seed); an MLP and a small CNN are then submitted as two training jobs, which the
 * coordinator runs side by side, one per worker. It prints their progress and held-out accuracy,
 * writes the loss curves (SVG) and each model's checkpoint. The jobs dashboard (workers, jobs, live
 * loss curves) is served on 127.0.0.1 while it runs; its address is printed.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { unavailableReason as nativeUnavailable } from '@kiln/backend-native';
import { openJobs } from 'kiln-tensor/jobs';
import { followJob } from './follow-job.js';
import { lossCurveSvg } from './loss-curve.js';
import { DEFAULT_OUT_DIR, makeMnistDataset } from './make-dataset.js';
import { cnnForward, type Forward, mlpForward } from './models.js';

const out = resolve(process.env.KILN_MNIST_OUT ?? join(process.cwd(), 'out'));
await mkdir(out, { recursive: true });
const epochs = (fallback: number) => Number(process.env.KILN_MNIST_EPOCHS ?? fallback);

const trainFile = join(DEFAULT_OUT_DIR, 'mnist-train.safetensors');
const testFile = join(DEFAULT_OUT_DIR, 'mnist-test.safetensors');
if (!existsSync(trainFile) || !existsSync(testFile)) {
  for (const d of makeMnistDataset()) console.log(`dataset: ${d.path} (${d.rows} rows, ${d.bytes} bytes)`);
} else console.log(`dataset: ${trainFile} and ${testFile}`);

// The native device (OpenBLAS, oneDNN and native loops) where it was built at install, else the
// CPU device; each of the two workers gets one thread of the machine's cores.
const native = nativeUnavailable === undefined;
const device = native ? 'native' : 'cpu';
const jobs = await openJobs({
  cluster: {
    workers: 2,
    ...(native ? { device: { module: '@kiln/backend-native', options: { threads: 1 } } } : {}),
  },
  dashboard: true,
});
const models: { forward: Forward; epochs: number; learningRate: number; target: number; color: string }[] = [
  { forward: mlpForward(), epochs: epochs(8), learningRate: 1e-3, target: 0.95, color: '#1f77b4' },
  { forward: cnnForward(), epochs: epochs(6), learningRate: 2e-3, target: 0.965, color: '#d62728' },
];
const feeds = { x: 'x', y: 'y' };
const submitted = await Promise.all(
  models.map((m) =>
    jobs.submit({
      name: m.forward.name,
      graph: m.forward.graph,
      loss: 'loss',
      device,
      optimizer: { kind: 'adam', learningRate: m.learningRate },
      dataset: { files: [trainFile], feeds },
      loop: { epochs: m.epochs, batchSize: 64, seed: 7 },
      evaluate: { dataset: { files: [testFile], feeds }, batchSize: 500, outputs: ['accuracy', 'loss'] },
      checkpoint: { every: 1000, dir: out },
    }),
  ),
);
console.log(
  `submitted ${submitted.length} jobs to the embedded cluster (2 worker threads, ${
    native ? 'the native device: OpenBLAS, oneDNN and native loops' : `the CPU device; ${nativeUnavailable}`
  })`,
);
console.log(`dashboard: ${jobs.dashboardUrl} (while this runs)\n`);
await Promise.all(
  submitted.map((job, i) => followJob(`job ${job.id} ${models[i]!.forward.name.split(' ')[0]}`, job)),
);

const rows: string[] = [];
const curves: { name: string; color: string; losses: number[] }[] = [];
const missed: string[] = [];
for (const [i, job] of submitted.entries()) {
  const m = models[i]!;
  const info = await job.status();
  if (info.state !== 'SUCCEEDED' || !info.result) {
    console.error(`job ${job.id} (${m.forward.name}) ${info.state}: ${info.reason ?? ''}`);
    missed.push(m.forward.name);
    continue;
  }
  const { metrics, seconds, checkpoint } = info.result;
  const accuracy = metrics.accuracy ?? 0;
  if (accuracy < m.target)
    missed.push(
      `${m.forward.name} (${(accuracy * 100).toFixed(2)}% < ${Number((m.target * 100).toFixed(1))}%)`,
    );
  curves.push({ name: m.forward.name, color: m.color, losses: (await job.metric('loss')).map(([, v]) => v) });
  rows.push(
    `| ${m.forward.name} | ${(accuracy * 100).toFixed(2)}% | ${Number((m.target * 100).toFixed(1))}% | ${(info.progress?.samplesPerSecond ?? 0).toFixed(0)} | ${seconds.toFixed(1)} s | ${checkpoint} |`,
  );
}
await writeFile(join(out, 'loss-curve.svg'), lossCurveSvg(curves, 'MNIST training loss'));
console.log(`\nloss curve: ${join(out, 'loss-curve.svg')}\n`);
console.log('| model | held-out accuracy | target | training samples/s | time | checkpoint |');
console.log('| ----- | ----------------: | -----: | -----------------: | ---: | ---------- |');
for (const row of rows) console.log(row);
await jobs.close();
if (missed.length) {
  console.error(`\nBelow target: ${missed.join(', ')}`);
  process.exitCode = 1;
}
