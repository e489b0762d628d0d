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
