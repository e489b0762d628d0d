/**
 * Trains on the MNIST digits shipped in the `mnist` package (10,000 of them, split 8,000 / 2,000
 * with a fixed seed), prints progress and the held-out accuracy, and writes a loss curve (SVG) and
 * a checkpoint of each model.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveCheckpointFile } from 'kiln-tensor';
import { loadMnist } from './data.js';
import { lossCurveSvg } from './loss-curve.js';
import { cnn, type Model, mlp } from './models.js';
import { accuracy, train } from './train.js';

const out = process.env.KILN_MNIST_OUT ?? join(process.cwd(), 'out');
await mkdir(out, { recursive: true });

const { train: trainSet, test } = loadMnist();
console.log(
  `MNIST from the mnist package: ${trainSet.labels.length} training and ${test.labels.length} held-out digits\n`,
);

const results: {
  name: string;
  accuracy: number;
  samplesPerSecond: number;
  seconds: number;
  target: number;
}[] = [];
const curves: { name: string; color: string; losses: number[] }[] = [];

const epochs = (fallback: number) => Number(process.env.KILN_MNIST_EPOCHS ?? fallback);
const plan: [Model, number, number, string, string][] = [
  [mlp(), epochs(6), 0.95, '#1f77b4', 'mlp.ckpt'],
  [cnn(), epochs(5), 0.97, '#d62728', 'cnn.ckpt'],
];
for (const [model, modelEpochs, target, color, file] of plan) {
  const run = await train(model, trainSet, { epochs: modelEpochs, batchSize: 64 });
  const acc = await accuracy(run.session, model, test);
  results.push({
    name: model.name,
    accuracy: acc,
    samplesPerSecond: run.samplesPerSecond,
    seconds: run.seconds,
    target,
  });
  curves.push({ name: model.name, color, losses: run.losses });
  const bytes = await saveCheckpointFile(
    join(out, file),
    await run.session.checkpoint({ steps: run.losses.length }),
  );
  console.log(
    `${model.name}: ${(acc * 100).toFixed(2)}% held-out accuracy; checkpoint ${join(out, file)} (${bytes} bytes)\n`,
  );
}

await writeFile(join(out, 'loss-curve.svg'), lossCurveSvg(curves, 'MNIST training loss'));
console.log(`loss curve: ${join(out, 'loss-curve.svg')}\n`);
console.log('| model | held-out accuracy | target | training samples/s | time |');
console.log('| ----- | ----------------: | -----: | -----------------: | ---: |');
for (const r of results) {
  console.log(
    `| ${r.name} | ${(r.accuracy * 100).toFixed(2)}% | ${(r.target * 100).toFixed(0)}% | ${r.samplesPerSecond.toFixed(0)} | ${r.seconds.toFixed(1)} s |`,
  );
}
const missed = results.filter((r) => r.accuracy < r.target);
if (missed.length) {
  console.error(`\nBelow target: ${missed.map((r) => r.name).join(', ')}`);
  process.exitCode = 1;
}
