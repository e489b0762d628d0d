import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataset, openSafetensors } from 'kiln-tensor/jobs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMnist } from '../src/data.js';
import { makeMnistDataset } from '../src/make-dataset.js';

describe('examples/mnist make-dataset', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-mnist-dataset-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes both splits as safetensors that match loadMnist', () => {
    const written = makeMnistDataset(dir);
    const { train, test } = loadMnist();
    expect(written.map((w) => [w.split, w.rows])).toEqual([
      ['train', train.labels.length],
      ['test', test.labels.length],
    ]);
    for (const w of written) {
      expect(statSync(w.path).size).toBe(w.bytes);
      const split = w.split === 'train' ? train : test;
      const n = split.labels.length;

      const file = openSafetensors(w.path);
      try {
        expect(file.metadata).toMatchObject({ split: w.split, seed: '1234' });
        expect(file.metadata.source).toMatch(/mnist/);
      } finally {
        file.close();
      }

      const data = Dataset.open(w.path);
      try {
        expect(data.rows).toBe(n);
        expect(data.tensors).toEqual({
          x: { dtype: 'float32', rowShape: [784] },
          y: { dtype: 'float32', rowShape: [10] },
          label: { dtype: 'int32', rowShape: [] },
        });
        const all = Int32Array.from({ length: n }, (_, i) => i);
        const labels = data.readRows('label', all).data;
        expect(labels).toEqual(split.labels);
        const y = data.readRows('y', all).data;
        for (let i = 0; i < n; i++) {
          const row = Array.from(y.subarray(i * 10, (i + 1) * 10));
          expect(row.reduce((a, b) => a + b, 0)).toBe(1);
          expect(row[labels[i]!]).toBe(1);
        }
        const first = Int32Array.from({ length: 16 }, (_, i) => i);
        expect(data.readRows('x', first).data).toEqual(split.images.data.subarray(0, 16 * 784));
        const last = data.readRows('x', [n - 1]).data;
        expect(last).toEqual(split.images.data.subarray((n - 1) * 784));
      } finally {
        data.close();
      }
    }
  });
});
