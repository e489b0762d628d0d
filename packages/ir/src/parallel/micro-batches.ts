import { add, div } from '../api/ops.js';
import { gradients } from '../autodiff/gradients.js';
import { KilnError } from '../errors.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import type { GraphData, ValueId } from '../graph/graph.js';
import type { GradientPair } from '../train/optimizers.js';
import { building } from './building.js';
import { copiesOutputs, meanLoss } from './copies.js';
import type { DataParallel, DataParallelOptions } from './data-parallel.js';
import { microBatchName, microBatchScope, replicaScope } from './naming.js';
import { type Replica, replicate, replicateVariables } from './replicate.js';
import { chunkBounds, packBucket, unpackBucket } from './ring-all-reduce.js';

/** Which device holds micro-batch k: contiguous ranges in device order, the first ones one longer. */
export function microBatchDevices(microBatches: number, devices: number): number[] {
  return chunkBounds(microBatches, devices).flatMap(({ size }, r) => new Array<number>(size).fill(r));
}

/**
 * Data parallelism whose arithmetic does not depend on the number of devices. The global batch is
 * cut into K fixed micro-batches (K = options.microBatches), whatever n is; device r holds a
 * contiguous range of them (microBatchDevices), each a copy of the forward graph reading that
 * device's one set of variables. Each micro-batch differentiates its own mean loss and packs its
 * gradients into one bucket; the buckets are summed as one left fold in micro-batch order,
 * ((b0 + b1) + b2) + ..., each add on the device of the bucket it adds, the running sum passed
 * from device r-1 to device r; the last device divides by K once, and every device applies that
 * mean to its own variables. Every micro-batch computes the same ops on the same shapes wherever
 * it runs, and the fold's order is fixed, so the weights are bit-identical on 1 device or K: a
 * job that loses a worker can go on with fewer and end where it would have.
 *
 * The price against the ring (dataParallel without microBatches): the fold runs down the device
 * chain, so device r's adds wait for device r-1's, and the last device sends the whole mean to
 * each other device instead of the ring's 2(n-1)/n of a bucket per device.
 */
export function microBatchParallel(
  g: Graph,
  forward: GraphData,
  options: DataParallelOptions,
  lossId: ValueId,
  trainable: readonly string[],
  shard: ReadonlySet<string>,
): Omit<DataParallel, 'graph' | 'devices' | 'shard'> {
  const { devices, optimizer } = options;
  const K = options.microBatches!;
  const n = devices.length;
  const deviceOf = microBatchDevices(K, n);
  const on = <R>(k: number, build: () => R) => g.onDevice(devices[deviceOf[k]!]!, build);
  // Device r's one set of weights, named as replica r's are without micro-batches.
  const weights = devices.map((device, r) =>
    g.onDevice(device, () => replicateVariables(g, forward, replicaScope(r))),
  );
  const copies: Replica[] = deviceOf.map((r, k) =>
    on(k, () =>
      replicate(g, forward, {
        scope: microBatchScope(r, k),
        placeholderName: (name) => microBatchName(name, k),
        // A known global batch becomes each micro-batch's share; an unknown one stays unknown.
        placeholderShape: (name, shape) =>
          shard.has(name) && typeof shape[0] === 'number' ? [shape[0] / K, ...shape.slice(1)] : shape,
        variables: weights[r]!,
      }),
    ),
  );
  const losses = copies.map((copy) => copy.tensor(lossId));
  const grads = copies.map((copy, k) =>
    on(k, () =>
      g.scope(microBatchScope(deviceOf[k]!, k), () =>
        gradients(
          [losses[k]!],
          trainable.map((name) => copy.variables.get(name)!),
        ),
      ),
    ),
  );
  // The copies are identical, so micro-batch 0 says which variables get a gradient.
  const kept = trainable.flatMap((name, i) => (grads[0]![i] ? [{ name, i }] : []));
  if (kept.length === 0)
    throw new KilnError(
      'invalid-argument',
      `dataParallel: no variable gets a gradient from the loss '${options.loss}'`,
    );
  const buckets = grads.map((gs, k) =>
    on(k, () => g.scope(microBatchScope(deviceOf[k]!, k), () => packBucket(kept.map(({ i }) => gs[i]!)))),
  );
  // The left fold, in micro-batch order: reading the running sum of the device before is the
  // cross-device edge the scheduler turns into a send/recv pair.
  let sum = buckets[0]!;
  for (let k = 1; k < K; k++) {
    const acc = sum;
    sum = on(k, () => add(acc, buckets[k]!, 'microBatches/fold'));
  }
  // Division rounds once; multiplying by a rounded 1/K (1/3, say) would round twice.
  const mean = on(K - 1, () => (K === 1 ? sum : div(sum, K, 'microBatches/mean')));
  const train = devices.flatMap((device, r) =>
    g.onDevice(device, () => {
      const ws = kept.map(({ name }) => weights[r]!.get(name)!);
      const pairs: GradientPair[] = unpackBucket(mean, ws).map((grad, j) => [ws[j]!, grad]);
      return building(`replica ${r}'s update`, () => optimizer.applyGradients(pairs));
    }),
  );
  // Summed in micro-batch order on device 0, divided once: the same loss on any number of devices.
  const loss = meanLoss(g, devices[0]!, losses);
  g.output(options.loss, loss);
  const outputs = copiesOutputs(g, forward, copies, microBatchName);
  const nameOf = (t: SymbolicTensor) => String(t.node.attrs.name);
  return {
    loss,
    train,
    feeds: new Map(
      [...copies[0]!.placeholders.keys()].map((p) => [p, copies.map((c) => nameOf(c.placeholders.get(p)!))]),
    ),
    variables: new Map([...weights[0]!.keys()].map((v) => [v, weights.map((w) => nameOf(w.get(v)!))])),
    outputs,
    microBatches: K,
  };
}
