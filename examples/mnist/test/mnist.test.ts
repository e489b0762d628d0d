import { describe, expect, it } from 'vitest';
import { epochOrder, gatherBatch, loadMnist } from '../src/data.js';
import { lossCurveSvg } from '../src/loss-curve.js';
import { mlp } from '../src/models.js';
import { accuracy, train } from '../src/train.js';

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

  it('learns: one epoch of the MLP beats 85% on the held-out digits', async () => {
    const model = mlp();
    const run = await train(model, trainSet, { epochs: 1, batchSize: 64, quiet: true });
    expect(run.losses.at(-1)!).toBeLessThan(run.losses[0]!);
    expect(await accuracy(run.session, model, test)).toBeGreaterThan(0.85);
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
