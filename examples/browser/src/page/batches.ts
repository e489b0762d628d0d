import { HostTensor, Prng } from 'kiln-tensor';
import { CLASSES, type DigitSplit, PIXELS } from '../digits-format.js';

/** Rows `rows` of a split as float32 pixels in [0, 1], with one-hot labels. */
export function gather(split: DigitSplit, rows: ArrayLike<number>): { x: HostTensor; y: HostTensor } {
  const count = rows.length;
  const x = new Float32Array(count * PIXELS);
  const y = new Float32Array(count * CLASSES);
  for (let i = 0; i < count; i++) {
    const row = rows[i]!;
    const pixels = split.images.subarray(row * PIXELS, (row + 1) * PIXELS);
    for (let p = 0; p < PIXELS; p++) x[i * PIXELS + p] = pixels[p]! / 255;
    y[i * CLASSES + split.labels[row]!] = 1;
  }
  return {
    x: new HostTensor('float32', [count, PIXELS], x),
    y: new HostTensor('float32', [count, CLASSES], y),
  };
}

/** A seeded permutation of 0..n-1: the page trains on the same batches in every browser. */
export function shuffled(n: number, seed: number): Int32Array {
  const rng = new Prng(seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Index of the largest of each row of `classes` logits. */
export function argmaxRows(logits: ArrayLike<number>, classes: number): number[] {
  const rows = logits.length / classes;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c]! > logits[r * classes + best]!) best = c;
    out.push(best);
  }
  return out;
}
