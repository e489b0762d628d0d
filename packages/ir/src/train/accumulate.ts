import { add, div } from '../api/ops.js';
import { gradients } from '../autodiff/gradients.js';
import { KilnError } from '../errors.js';
import type { SymbolicTensor } from '../graph/builder.js';
import { type GradientPair, type Optimizer, trainableVariables } from './optimizers.js';

/** The two kinds of run of a step taken over micro-batches. */
export interface Accumulation {
  /** Targets of each micro-batch's run: add its gradients to the accumulators. */
  readonly accumulate: SymbolicTensor[];
  /** Targets of the run after the last micro-batch: update with the mean, zero the accumulators. */
  readonly apply: SymbolicTensor[];
  readonly microBatches: number;
}

/**
 * One training step over `microBatches` micro-batches, as pipeline parallelism needs (GPipe): each
 * micro-batch's gradients are added into accumulator variables, then the optimizer applies their
 * mean, which for equal micro-batches and a mean loss is the gradient of the whole batch. Each
 * accumulator and update is built in its variable's device scope, so it stays with its layer.
 */
export function accumulateGradients(
  loss: SymbolicTensor,
  optimizer: Optimizer,
  options: { readonly microBatches: number; readonly variables?: readonly SymbolicTensor[] },
): Accumulation {
  const g = loss.graph;
  const k = options.microBatches;
  if (!Number.isInteger(k) || k < 1)
    throw new KilnError(
      'invalid-argument',
      `accumulateGradients: microBatches must be a positive integer, got ${k}`,
    );
  const vars = options.variables ?? trainableVariables(loss);
  if (vars.length === 0)
    throw new KilnError('invalid-argument', `accumulateGradients: ${loss} depends on no float variable`);
  const grads = gradients([loss], vars);
  const onDeviceOf = <R>(v: SymbolicTensor, build: () => R): R =>
    v.node.device === undefined ? build() : g.onDevice(v.node.device, build);

  const accumulate: SymbolicTensor[] = [];
  const byDevice = new Map<string | undefined, GradientPair[]>();
  const resets: SymbolicTensor[] = [];
  vars.forEach((w, i) => {
    const grad = grads[i];
    if (!grad) return;
    onDeviceOf(w, () => {
      const shape = w.shape as number[];
      const zeros = () =>
        g.constant({ dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
      const acc = g.variable(`${String(w.node.attrs.name)}/grad_sum`, zeros());
      accumulate.push(g.assign(acc, add(acc, grad)));
      const pairs = byDevice.get(w.node.device) ?? [];
      pairs.push([w, div(acc, k)]);
      byDevice.set(w.node.device, pairs);
      resets.push(g.assign(acc, zeros()));
    });
  });
  // One applyGradients per device, inside its scope: an optimizer's own state (Adam's step) is
  // then per device too, and no update crosses between workers.
  const apply = [...byDevice].flatMap(([device, pairs]) =>
    device === undefined
      ? optimizer.applyGradients(pairs)
      : g.onDevice(device, () => optimizer.applyGradients(pairs)),
  );
  return { accumulate, apply: [...apply, ...resets], microBatches: k };
}
