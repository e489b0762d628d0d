import { createRequire } from 'node:module';
import { HostTensor, Prng } from 'kiln-tensor';

/**
 * The 10,000 MNIST digits the `mnist` package ships (28x28, values in [0, 1]), split per digit
 * into training and held-out sets with a seeded shuffle: the same split on every machine.
 */
export interface Split {
  readonly images: HostTensor; // [n, 784] float32
  readonly labels: Int32Array;
}

const require = createRequire(import.meta.url);
const PIXELS = 784;

export function loadMnist(options: { testFraction?: number; seed?: number } = {}): {
  train: Split;
  test: Split;
} {
  const testFraction = options.testFraction ?? 0.2;
  const rng = new Prng(options.seed ?? 1234);
  const train: [number[], number][] = [];
  const test: [number[], number][] = [];
  for (let digit = 0; digit < 10; digit++) {
    const raw = (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data;
    const count = Math.floor(raw.length / PIXELS);
    const order = shuffle(
      Array.from({ length: count }, (_, i) => i),
      rng,
    );
    const testCount = Math.round(count * testFraction);
    order.forEach((which, k) => {
      const sample = raw.slice(which * PIXELS, (which + 1) * PIXELS);
      (k < testCount ? test : train).push([sample, digit]);
    });
  }
  return { train: pack(shuffle(train, rng)), test: pack(test) };
}

function shuffle<T>(items: T[], rng: Prng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function pack(samples: [number[], number][]): Split {
  const data = new Float32Array(samples.length * PIXELS);
  const labels = new Int32Array(samples.length);
  samples.forEach(([pixels, label], i) => {
    data.set(pixels, i * PIXELS);
    labels[i] = label;
  });
  return { images: new HostTensor('float32', [samples.length, PIXELS], data), labels };
}

/** Rows [start, start + count) of a split, as views (no copy), with one-hot labels. */
export function batch(
  split: Split,
  start: number,
  count: number,
): { x: HostTensor; y: HostTensor; labels: Int32Array } {
  const x = new HostTensor(
    'float32',
    [count, PIXELS],
    split.images.data.subarray(start * PIXELS, (start + count) * PIXELS) as Float32Array,
  );
  const labels = split.labels.subarray(start, start + count);
  const oneHot = new Float32Array(count * 10);
  labels.forEach((l, i) => {
    oneHot[i * 10 + l] = 1;
  });
  return { x, y: new HostTensor('float32', [count, 10], oneHot), labels };
}

/** The rows at `indices` (copied), with one-hot labels: a shuffled batch. */
export function gatherBatch(split: Split, indices: ArrayLike<number>): { x: HostTensor; y: HostTensor } {
  const count = indices.length;
  const x = new Float32Array(count * PIXELS);
  const y = new Float32Array(count * 10);
  const images = split.images.data as Float32Array;
  for (let i = 0; i < count; i++) {
    const row = indices[i]!;
    x.set(images.subarray(row * PIXELS, (row + 1) * PIXELS), i * PIXELS);
    y[i * 10 + split.labels[row]!] = 1;
  }
  return { x: new HostTensor('float32', [count, PIXELS], x), y: new HostTensor('float32', [count, 10], y) };
}

/** A permutation of 0..n-1 for an epoch, the same for a given seed and epoch on every machine. */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const rng = new Prng(seed * 1000 + epoch);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
