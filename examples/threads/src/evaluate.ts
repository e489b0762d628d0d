import { batch, type Split } from '@kiln/example-mnist/data';
import type { ClusterSession, SymbolicTensor } from 'kiln';

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
    const out = (await session.run(logits, { [x]: b.x })).data;
    for (let i = 0; i < batchSize; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (out[i * 10 + c]! > out[i * 10 + best]!) best = c;
      if (best === b.labels[i]) correct++;
    }
  }
  return correct / (Math.floor(data.labels.length / batchSize) * batchSize);
}
