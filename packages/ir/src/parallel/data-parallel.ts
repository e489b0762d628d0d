import { div, slice } from '../api/ops.js';
import { gradients } from '../autodiff/gradients.js';
import { KilnError } from '../errors.js';
import { Graph, SymbolicTensor } from '../graph/builder.js';
import { type GraphData, placeholderNodes, type ValueId } from '../graph/graph.js';
import { requiredNodes } from '../graph/prune.js';
import { formatType, type Shape } from '../shape.js';
import type { GradientPair, Optimizer } from '../train/optimizers.js';
import { building } from './building.js';
import { copiesOutputs, meanLoss } from './copies.js';
import { microBatchParallel } from './micro-batches.js';
import { replicaName, replicaScope } from './naming.js';
import { type Replica, replicate } from './replicate.js';
import {
  allGather,
  bucketAllReduce,
  checkDevices,
  chunkSum,
  packBucket,
  ringReduceScatter,
  unpackBucket,
} from './ring-all-reduce.js';

export interface DataParallelOptions {
  /** One replica per device, in ring order; devices[0] also computes the reported loss. */
  readonly devices: readonly string[];
  /** The name of the forward graph's output holding the loss: a float32 scalar, a batch mean. */
  readonly loss: string;
  /** Placeholders whose dimension 0 is the batch: each replica gets 1/n of it. */
  readonly shard: readonly string[];
  readonly optimizer: Optimizer;
  /**
   * Shard the update (ZeRO stage 1): instead of every replica applying the whole update, the
   * owner of each chunk of the gradient bucket updates that chunk of a flat copy of the weights
   * (and alone keeps its optimizer state), and the updated chunks are gathered back into every
   * replica's weights. Each replica then does 1/n of the optimizer's work and holds 1/n of its
   * state; the result is the same update.
   */
  readonly shardUpdate?: boolean;
  /**
   * Cut the global batch into this many fixed, equal micro-batches (K), whatever the number of
   * devices, for weights that are bit-identical on any number of devices from 1 to K: device r
   * computes a contiguous range of micro-batches (12 over 5 devices: 3, 3, 2, 2, 2), each on one
   * shared set of weights, and their gradients are summed in micro-batch order, wherever each was
   * computed, instead of by the ring. A job that loses a worker can then go on with fewer and end
   * with the weights it would have had. Needs devices <= K and, for a known batch, K dividing it;
   * not with shardUpdate. See microBatchParallel.
   */
  readonly microBatches?: number;
  /**
   * A name scope around everything the rewrite adds, variables included ('job7' gives
   * 'job7/replica0/dense1/w' and 'job7/adam/step'): graphs that share a cluster's variables by
   * name, such as two jobs of one model, then keep their weights and optimizer state apart.
   */
  readonly scope?: string;
}

/** A data-parallel training graph and how its replicas' names map to the forward graph's. */
export interface DataParallel {
  readonly graph: Graph;
  readonly devices: readonly string[];
  /**
   * The mean of the replicas' (or the micro-batches') losses, on devices[0]: the global batch's
   * loss for equal shards.
   */
  readonly loss: SymbolicTensor;
  /** Every replica's updates: run them as targets to take one training step. */
  readonly train: SymbolicTensor[];
  /** The placeholders split along the batch (the option, kept for shardBatch). */
  readonly shard: readonly string[];
  /**
   * Forward placeholder name -> its per-replica placeholder names, replica r at index r; with
   * micro-batches, its per-micro-batch names (`x@m{k}`), micro-batch k at index k.
   */
  readonly feeds: ReadonlyMap<string, readonly string[]>;
  /**
   * Forward variable name -> its per-replica variable names, replica r (device r) at index r
   * (`replica{r}/dense1/w`), with or without micro-batches.
   */
  readonly variables: ReadonlyMap<string, readonly string[]>;
  /**
   * Forward output name -> each replica's copy of it (also named outputs `name@r{r}`); with
   * micro-batches, each micro-batch's (`name@m{k}`).
   */
  readonly outputs: ReadonlyMap<string, readonly SymbolicTensor[]>;
  /** The number of micro-batches, when the option was given. */
  readonly microBatches?: number;
}

const fail = (message: string) => new KilnError('invalid-argument', message);

/** The checks that need only the forward graph; returns the loss value and the trainable names. */
function checkForward(forward: GraphData, options: DataParallelOptions) {
  const where = 'dataParallel';
  checkDevices(options.devices, where);
  const n = options.devices.length;
  const { microBatches } = options;
  if (microBatches !== undefined) checkMicroBatches(microBatches, n, options.shardUpdate === true);
  // The batch is split into micro-batches if there are any, else into one share per device.
  const parts = microBatches ?? n;
  const partsOf = microBatches === undefined ? 'equal parts' : 'equal micro-batches';
  const lossId = forward.outputs[options.loss];
  if (lossId === undefined) {
    const known = Object.keys(forward.outputs);
    throw fail(
      `${where}: the forward graph has no output named '${options.loss}' for the loss` +
        `; its outputs: ${known.length ? known.join(', ') : 'none'}`,
    );
  }
  const lossType = forward.values[lossId]!.type;
  if (lossType.shape.length !== 0 || lossType.dtype !== 'float32')
    throw fail(
      `${where}: the loss '${options.loss}' is ${formatType(lossType)}; it must be a float32 scalar (a mean over the batch)`,
    );
  const placeholders = new Map(placeholderNodes(forward).map((p) => [String(p.attrs.name), p]));
  for (const name of options.shard) {
    const p = placeholders.get(name);
    if (!p)
      throw fail(
        `${where}: cannot shard '${name}': the forward graph has no placeholder of that name` +
          `; its placeholders: ${[...placeholders.keys()].join(', ') || 'none'}`,
      );
    const shape = p.attrs.shape as Shape;
    if (shape.length === 0)
      throw fail(`${where}: cannot shard placeholder '${name}': it is a scalar, with no batch dimension`);
    const batch = shape[0];
    if (typeof batch === 'number' && batch % parts !== 0)
      throw fail(
        `${where}: cannot shard placeholder '${name}': its batch of ${batch} does not split into ${parts} ${partsOf}`,
      );
  }
  // The forward graph's float variables the loss reads, in graph order, the same for every replica.
  const trainable = requiredNodes(forward, [lossId])
    .map((id) => forward.nodes[id]!)
    .filter((node) => node.op === 'variable' && node.attrs.dtype === 'float32')
    .map((node) => String(node.attrs.name));
  if (trainable.length === 0)
    throw fail(`${where}: the loss '${options.loss}' depends on no float32 variable`);
  return { lossId, trainable };
}

/** The microBatches option against the device count and the other options. */
function checkMicroBatches(k: number, n: number, shardUpdate: boolean): void {
  if (!Number.isInteger(k) || k < 1)
    throw fail(`dataParallel: microBatches must be an integer >= 1, got ${k}`);
  if (k < n)
    throw fail(
      `dataParallel: ${n} devices for ${k} micro-batches; each device needs at least one (microBatches >= devices)`,
    );
  if (shardUpdate)
    throw fail(
      'dataParallel: microBatches cannot be combined with shardUpdate: the sharded update sums ' +
        'with the ring, whose order depends on the number of devices',
    );
}

/**
 * Data-parallel training as a graph rewrite. The forward graph (placeholders, variables with
 * initializers, a scalar mean loss, no optimizer) is copied once per device, each copy inside that
 * device's scope, with its own placeholders (`x@r1`) and variables (`replica1/dense1/w`, started
 * from the same counter-based initializers, so the replicas start identical). Each replica
 * differentiates its own loss; the gradients are summed by one bucketed ring all-reduce and divided
 * by n, which for equal shards is the gradient of the global batch's mean loss; then every replica
 * applies that update itself. The ring gives each replica bit-identical gradients, and the update
 * is the same computation on the same values, so the replicas stay identical step after step.
 * The ring's sums still depend on n (the shards and the order differ), so weights on 2 devices
 * differ from those on 3 in the last bits; with `microBatches` they do not (microBatchParallel).
 */
export function dataParallel(forward: GraphData, options: DataParallelOptions): DataParallel {
  const { lossId, trainable } = checkForward(forward, options);
  const shard = new Set(options.shard);
  const g = new Graph();
  return options.scope === undefined
    ? build(g, forward, options, lossId, trainable, shard)
    : g.scope(options.scope, () => build(g, forward, options, lossId, trainable, shard));
}

function build(
  g: Graph,
  forward: GraphData,
  options: DataParallelOptions,
  lossId: ValueId,
  trainable: readonly string[],
  shard: ReadonlySet<string>,
): DataParallel {
  const { devices, optimizer } = options;
  if (options.microBatches !== undefined)
    return {
      graph: g,
      devices: [...devices],
      shard: [...options.shard],
      ...microBatchParallel(g, forward, options, lossId, trainable, shard),
    };
  const n = devices.length;
  const replicas = devices.map((device, r) =>
    g.onDevice(device, () =>
      replicate(g, forward, {
        scope: replicaScope(r),
        placeholderName: (name) => replicaName(name, r),
        // A known global batch becomes each replica's share; an unknown one stays unknown.
        placeholderShape: (name, shape) =>
          shard.has(name) && typeof shape[0] === 'number' ? [shape[0] / n, ...shape.slice(1)] : shape,
      }),
    ),
  );
  const losses = replicas.map((rep) => rep.tensor(lossId));
  const grads = replicas.map((rep, r) =>
    g.onDevice(devices[r]!, () =>
      g.scope(replicaScope(r), () =>
        gradients(
          [losses[r]!],
          trainable.map((name) => rep.variables.get(name)!),
        ),
      ),
    ),
  );
  // A variable read only through ops without a gradient gets none; the copies are identical, so
  // replica 0 speaks for all of them.
  const kept = trainable.flatMap((name, i) => (grads[0]![i] ? [{ name, i }] : []));
  if (kept.length === 0)
    throw fail(`dataParallel: no variable gets a gradient from the loss '${options.loss}'`);
  const train = options.shardUpdate
    ? shardedUpdate(
        g,
        devices,
        optimizer,
        grads.map((gs) => kept.map(({ i }) => gs[i]!)),
        replicas.map((rep) => kept.map(({ name }) => rep.variables.get(name)!)),
      )
    : replicatedUpdate(g, devices, optimizer, replicas, grads, kept);
  // Summed in replica order on one device: the same reported loss every run.
  const loss = meanLoss(g, devices[0]!, losses);
  g.output(options.loss, loss);
  const outputs = copiesOutputs(g, forward, replicas, replicaName);
  const namesOf = (pick: (rep: Replica) => ReadonlyMap<string, SymbolicTensor>) =>
    new Map(
      [...pick(replicas[0]!).keys()].map((original) => [
        original,
        replicas.map((rep) => String(pick(rep).get(original)!.node.attrs.name)),
      ]),
    );
  return {
    graph: g,
    devices: [...devices],
    loss,
    train,
    shard: [...options.shard],
    feeds: namesOf((rep) => rep.placeholders),
    variables: namesOf((rep) => rep.variables),
    outputs,
  };
}

/** The plain form: the gradients all-reduced in one bucket, every replica applying the update. */
function replicatedUpdate(
  g: Graph,
  devices: readonly string[],
  optimizer: Optimizer,
  replicas: readonly Replica[],
  grads: readonly (readonly (SymbolicTensor | null)[])[],
  kept: readonly { readonly name: string; readonly i: number }[],
): SymbolicTensor[] {
  const n = devices.length;
  const sums = bucketAllReduce(
    g,
    grads.map((gs) => kept.map(({ i }) => gs[i]!)),
    devices,
  );
  return replicas.flatMap((rep, r) =>
    g.onDevice(devices[r]!, () => {
      // Division rounds once; multiplying by a rounded 1/n (1/3, say) would round twice.
      const pairs: GradientPair[] = kept.map(({ name }, k) => {
        const sum = sums[r]![k]!;
        const mean = n === 1 ? sum : g.scope(replicaScope(r), () => div(sum, n, 'gradients/mean'));
        return [rep.variables.get(name)!, mean];
      });
      return building(`replica ${r}'s update`, () => optimizer.applyGradients(pairs));
    }),
  );
}

/**
 * The sharded form (ZeRO stage 1). The gradient bucket is reduce-scattered, so chunk c's sum ends
 * on its owner alone; the owner keeps chunk c of the weights as a flat variable of its own
 * (initialized from its replica's initial weights, which every replica shares) and applies the
 * optimizer to it, so the optimizer's state exists once, on one device. The updated chunks are
 * gathered onto every device and unpacked into each replica's weights.
 */
function shardedUpdate(
  g: Graph,
  devices: readonly string[],
  optimizer: Optimizer,
  grads: readonly (readonly SymbolicTensor[])[],
  weights: readonly (readonly SymbolicTensor[])[],
): SymbolicTensor[] {
  const n = devices.length;
  const initial = (w: SymbolicTensor) => {
    const init = g.initializers.find((i) => i.variable === w.node.attrs.name);
    if (!init) throw fail(`dataParallel: variable '${String(w.node.attrs.name)}' has no initializer`);
    return new SymbolicTensor(g, init.value);
  };
  const buckets = grads.map((gs, r) => g.onDevice(devices[r]!, () => packBucket(gs)));
  const chunks = ringReduceScatter(g, buckets, devices);
  const train: SymbolicTensor[] = [];
  const updated = chunks.map((chunk) => {
    const { c, begin, size, owner } = chunk;
    const sum = chunkSum(g, chunk, devices);
    return g.onDevice(devices[owner]!, () =>
      g.scope(`dataParallel/shard${c}`, () => {
        const start = packBucket(weights[owner]!.map(initial));
        const shard = g.variable('weights', slice(start, [begin], [size], 'init'));
        const mean = n === 1 ? sum : div(sum, n, 'gradients/mean');
        const updates = building(`the update of shard ${c}`, () => optimizer.applyGradients([[shard, mean]]));
        train.push(...updates);
        // The value the shard's assign stores: the updated chunk.
        const store = updates.find((u) => u.node.attrs.variable === shard.node.attrs.name)!;
        return new SymbolicTensor(g, store.node.inputs[0]!);
      }),
    );
  });
  const gathered = allGather(g, updated, devices);
  weights.forEach((ws, r) =>
    g.onDevice(devices[r]!, () =>
      unpackBucket(gathered[r]!, ws).forEach((value, k) => train.push(g.assign(ws[k]!, value))),
    ),
  );
  return train;
}
