import { type Checkpoint, Session } from 'kiln-tensor';
import { batch, epochOrder, gatherBatch, type Split } from './data.js';
import type { Model } from './models.js';
import { Progress } from './progress.js';

export interface TrainOptions {
  readonly epochs: number;
  readonly batchSize: number;
  /** Seeds the per-epoch shuffles. */
  readonly seed?: number;
  /** Report progress (default: a progress line on stderr). */
  readonly quiet?: boolean;
}

export interface TrainResult {
  readonly session: Session;
  readonly losses: number[];
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

/**
 * Trains with one compiled step per batch: the Session compiles forward, backward and the
 * optimizer's updates into one program for the batch shape and reuses it every step.
 */
export async function train(
  model: Model,
  data: Split,
  options: TrainOptions,
  restore?: Checkpoint,
): Promise<TrainResult> {
  const session = new Session(model.graph);
  if (restore) await session.restore(restore);
  const perEpoch = Math.floor(data.labels.length / options.batchSize);
  const total = perEpoch * options.epochs;
  const progress = options.quiet ? null : new Progress(model.name, total, options.batchSize);
  const losses: number[] = [];
  let order = epochOrder(data.labels.length, options.seed ?? 7, 0);
  for (let step = 0; step < total; step++) {
    const inEpoch = step % perEpoch;
    // A fresh, seeded order every epoch: batches differ between epochs, runs do not.
    if (inEpoch === 0 && step > 0) order = epochOrder(data.labels.length, options.seed ?? 7, step / perEpoch);
    const { x, y } = gatherBatch(
      data,
      order.subarray(inEpoch * options.batchSize, (inEpoch + 1) * options.batchSize),
    );
    const loss = (await session.run(model.loss, { x, y }, { targets: model.train })).data[0]!;
    losses.push(loss);
    progress?.update(step, loss);
  }
  const seconds = progress?.finish() ?? 0;
  return {
    session,
    losses,
    seconds,
    samplesPerSecond: (total * options.batchSize) / Math.max(seconds, 1e-9),
  };
}

/** Accuracy on a split: argmax of the logits against the labels. */
export async function accuracy(
  session: Session,
  model: Model,
  data: Split,
  batchSize = 500,
): Promise<number> {
  let correct = 0;
  for (let start = 0; start < data.labels.length; start += batchSize) {
    const count = Math.min(batchSize, data.labels.length - start);
    const { x, labels } = batch(data, start, count);
    correct += correctPredictions((await session.run(model.logits, { x })).data, labels);
  }
  return correct / data.labels.length;
}

/** How many rows of `logits` ([n, classes]) have their largest value at the row's label. */
export function correctPredictions(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes = 10,
): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
    if (best === labels[i]) correct++;
  }
  return correct;
}
