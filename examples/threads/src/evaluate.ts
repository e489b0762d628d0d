import { batch, type Split } from '@kiln/example-mnist/data';
import { correctPredictions } from '@kiln/example-mnist/predictions';
import type { ClusterSession, SymbolicTensor } from 'kiln-tensor';

/** Accuracy on a split: argmax of `logits`, fed batch by batch through `x` on the cluster. */
export async function accuracy(
  session: ClusterSession,
  logits: SymbolicTensor,
  x: string,
  data: Split,
  batchSize = 500,
): Promise<number> {
  let correct = 0;
  for (let start = 0; start + batchSize <= data.labels.length; start += batchSize) {
    const b = batch(data, start, batchSize);
    correct += correctPredictions((await session.run(logits, { [x]: b.x })).data, b.labels);
  }
  return correct / (Math.floor(data.labels.length / batchSize) * batchSize);
}
