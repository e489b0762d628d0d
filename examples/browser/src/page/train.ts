import { type Device, Session } from 'kiln-tensor';
import { mlp } from '../../../mnist/src/models.js';
import { CLASSES, type DigitSplit } from '../digits-format.js';
import { argmaxRows, gather, shuffled } from './batches.js';

export interface TrainRun {
  readonly losses: number[];
  readonly seconds: number;
  readonly predictions: number[];
  readonly accuracy: number;
}

export interface TrainOptions {
  readonly steps: number;
  readonly batchSize: number;
  /** Called between steps; the page yields to the event loop here so progress can paint. */
  readonly onStep?: (step: number, loss: number) => void | Promise<void>;
  readonly onEvaluate?: () => void | Promise<void>;
}

/**
 * Trains the MNIST example's MLP on `device` for a few steps (one compiled program runs forward,
 * backward and Adam's updates each step), then predicts every held-out digit.
 */
export async function trainAndEvaluate(
  device: Device,
  train: DigitSplit,
  test: DigitSplit,
  options: TrainOptions,
): Promise<TrainRun> {
  const model = mlp();
  const session = new Session(model.graph, { device });
  const losses: number[] = [];
  const start = performance.now();
  let order = shuffled(train.count, 0);
  const perEpoch = Math.floor(train.count / options.batchSize);
  for (let step = 0; step < options.steps; step++) {
    const inEpoch = step % perEpoch;
    if (inEpoch === 0 && step > 0) order = shuffled(train.count, step / perEpoch);
    const rows = order.subarray(inEpoch * options.batchSize, (inEpoch + 1) * options.batchSize);
    const { x, y } = gather(train, rows);
    const loss = (await session.run(model.loss, { x, y }, { targets: model.train })).data[0]!;
    losses.push(loss);
    await options.onStep?.(step, loss);
  }
  const seconds = (performance.now() - start) / 1000;

  await options.onEvaluate?.();
  const predictions: number[] = [];
  const evalBatch = 500;
  for (let first = 0; first < test.count; first += evalBatch) {
    const rows = Array.from({ length: Math.min(evalBatch, test.count - first) }, (_, i) => first + i);
    const logits = (await session.run(model.logits, { x: gather(test, rows).x })).data;
    predictions.push(...argmaxRows(logits, CLASSES));
  }
  await session.close();
  const correct = predictions.filter((p, i) => p === test.labels[i]).length;
  return { losses, seconds, predictions, accuracy: correct / test.count };
}
