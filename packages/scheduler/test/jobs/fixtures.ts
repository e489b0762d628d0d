import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, Graph, HostTensor, matmul, mean, Prng, square, sub, tensor } from '@kiln/ir';
import { writeSafetensors } from '../../src/data/index.js';

/** A forward graph: linear regression y ~ x w + b, outputs 'loss' (mean squared error) and 'mae'. */
export function regressionGraph(features = 4) {
  const g = new Graph();
  const x = g.placeholder('float32', [null, features], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', tensor(g, new Array(features).fill(0), [features, 1]));
  const b = g.variable('b', tensor(g, [0], [1]));
  const pred = add(matmul(x, w), b);
  const err = sub(pred, y);
  g.output('pred', pred);
  g.output('loss', mean(square(err)));
  g.output('mse2', mean(square(err)));
  return g;
}

/** Rows of y = x . trueW + 0.5 (no noise), written as a safetensors file with tensors x and y. */
export async function regressionData(dir: string, file: string, rows: number, seed = 1, features = 4) {
  const rng = new Prng(seed);
  const trueW = [0.5, -1, 2, 0.25].slice(0, features);
  const x = new Float32Array(rows * features);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0.5;
    for (let f = 0; f < features; f++) {
      const v = rng.normal();
      x[r * features + f] = v;
      s += v * trueW[f]!;
    }
    y[r] = s;
  }
  const path = join(dir, file);
  await writeSafetensors(path, {
    x: new HostTensor('float32', [rows, features], x),
    y: new HostTensor('float32', [rows, 1], y),
  });
  return path;
}

export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-jobs-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A training spec on the regression data. */
export function trainSpec(train: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'regression',
    graph: regressionGraph(),
    loss: 'loss',
    optimizer: { kind: 'sgd', learningRate: 0.05 },
    dataset: { files: [train], feeds: { x: 'x', y: 'y' } },
    loop: { epochs: 2, batchSize: 16, seed: 3 },
    ...overrides,
  };
}
