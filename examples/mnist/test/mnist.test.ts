import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJobs } from 'kiln-tensor/jobs';
import { describe, expect, it } from 'vitest';
import { epochOrder, gatherBatch, loadMnist } from '../src/data.js';
import { lossCurveSvg } from '../src/loss-curve.js';
import { makeMnistDataset } from '../src/make-dataset.js';
import { mlpForward } from '../src/models.js';

describe('examples/mnist', () => {
  const { train: trainSet, test } = loadMnist();

  it('splits the 10,000 shipped digits deterministically, 80/20 per digit', () => {
    expect(trainSet.labels.length + test.labels.length).toBe(10_000);
    expect(test.labels.length).toBeGreaterThan(1900);
    const again = loadMnist();
    expect(again.test.labels).toEqual(test.labels);
    expect(again.train.images.data.subarray(0, 784 * 3)).toEqual(trainSet.images.data.subarray(0, 784 * 3));
    for (let d = 0; d < 10; d++) expect(test.labels.filter((l) => l === d).length).toBeGreaterThan(150);
  });

  it('builds shuffled batches with one-hot labels', () => {
    const order = epochOrder(trainSet.labels.length, 7, 3);
    expect(new Set(order).size).toBe(trainSet.labels.length);
    const { x, y } = gatherBatch(trainSet, order.subarray(0, 5));
    expect(x.shape).toEqual([5, 784]);
    for (let i = 0; i < 5; i++) expect(y.data[i * 10 + trainSet.labels[order[i]!]!]).toBe(1);
    expect(Array.from(y.data).reduce((a, b) => a + b)).toBe(5);
  });

  it('learns as a job: one epoch of the MLP on the converted dataset beats 85% held out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-mnist-'));
    const jobs = await openJobs({ cluster: { workers: 1 } });
    try {
      const [trainFile, testFile] = makeMnistDataset(dir).map((d) => d.path);
      const feeds = { x: 'x', y: 'y' };
      const job = await jobs.submit({
        name: 'mlp',
        graph: mlpForward().graph,
        loss: 'loss',
        optimizer: { kind: 'adam', learningRate: 1e-3 },
        dataset: { files: [trainFile!], feeds },
        loop: { epochs: 1, batchSize: 64, seed: 7 },
        evaluate: { dataset: { files: [testFile!], feeds }, batchSize: 500, outputs: ['accuracy'] },
      });
      const result = await job.result();
      const losses = (await job.metric('loss')).map(([, v]) => v);
      expect(losses).toHaveLength(125);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
      expect(result.metrics.accuracy).toBeGreaterThan(0.85);
    } finally {
      await jobs.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('draws a loss curve with one line per model', () => {
    const svg = lossCurveSvg(
      [
        { name: 'a', color: '#000', losses: [2, 1, 0.5] },
        { name: 'b<c', color: '#f00', losses: [1, 0.2] },
      ],
      'loss',
    );
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('b&#60;c');
  });
});
