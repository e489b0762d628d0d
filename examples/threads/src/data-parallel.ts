import { epochOrder, gatherBatch, type Split } from '@kiln/example-mnist/data';
import { mlpForward } from '@kiln/example-mnist/models';
import {
  Adam,
  type Cluster,
  ClusterSession,
  dataParallel,
  type ExecutionPlan,
  shardBatch,
} from 'kiln-tensor';
import { accuracy } from './evaluate.js';

export interface DataParallelResult {
  readonly workers: number;
  readonly samplesPerSecond: number;
  readonly finalLoss: number;
  readonly accuracy: number;
  readonly plan: ExecutionPlan;
  readonly secondsPerStep: number;
}

/**
 * Trains the MLP data-parallel on a cluster's workers (threads, or processes on other machines:
 * this code does not know which): the graph is replicated once per worker,
 * each replica takes an equal slice of every batch, and the gradients are summed by a ring
 * reduce-scatter written in IR ops; each worker applies Adam to its own chunk of the weights (the
 * update sharded, ZeRO stage 1) and the updated chunks are gathered back into every replica.
 */
export async function trainDataParallel(
  pool: Cluster,
  train: Split,
  test: Split,
  options: { readonly steps: number; readonly batchSize: number; readonly log?: (line: string) => void },
): Promise<DataParallelResult> {
  const workers = pool.names.length;
  const dp = dataParallel(mlpForward().graph, {
    devices: pool.names,
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 1e-3 }),
    // Each worker updates its own chunk of the weights and keeps that chunk's Adam state.
    shardUpdate: true,
  });
  const session = new ClusterSession(dp.graph, pool);
  const perEpoch = Math.floor(train.labels.length / options.batchSize);
  const feedsFor = (step: number) => {
    const order = epochOrder(train.labels.length, 7, Math.floor(step / perEpoch));
    const at = (step % perEpoch) * options.batchSize;
    return shardBatch(gatherBatch(train, order.subarray(at, at + options.batchSize)), dp);
  };
  // The first step plans, loads the partitions and initializes the variables: not timed.
  let loss = (await session.run(dp.loss, feedsFor(0), { targets: dp.train })).data[0]!;
  const start = performance.now();
  for (let step = 1; step <= options.steps; step++) {
    loss = (await session.run(dp.loss, feedsFor(step), { targets: dp.train })).data[0]!;
    if (step % 10 === 0)
      options.log?.(`  ${workers} worker(s): step ${step}/${options.steps} loss ${loss.toFixed(4)}`);
  }
  const seconds = (performance.now() - start) / 1000;
  const plan = await session.plan(dp.loss, feedsFor(0), dp.train);
  return {
    workers,
    samplesPerSecond: (options.steps * options.batchSize) / seconds,
    finalLoss: loss,
    accuracy: await accuracy(session, dp.outputs.get('logits')![0]!, dp.feeds.get('x')![0]!, test),
    plan,
    secondsPerStep: seconds / options.steps,
  };
}

/** Which worker runs what: partitions, their sizes, and the transfers between workers. */
export function placementSummary(plan: ExecutionPlan): string {
  const lines = plan.partitions.map((p) => {
    const ops = new Map<string, number>();
    for (const n of p.subgraph.nodes) if (n.op !== 'placeholder') ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
    const top = [...ops].sort((a, b) => b[1] - a[1]).slice(0, 4);
    const recvs = p.inputs.filter((i) => i.kind === 'recv').length;
    const sends = p.outputs.filter((o) => o.kind === 'send').length;
    const assigns = p.outputs.filter((o) => o.kind === 'assign').length;
    return `  ${p.device} stage ${p.stage}: ${p.subgraph.nodes.length} nodes (${top.map(([op, n]) => `${n} ${op}`).join(', ')}), ${recvs} in from other partitions, ${sends} out, ${assigns} variable updates`;
  });
  lines.push(`  ${plan.transfers} tensor transfers between workers per step`);
  return lines.join('\n');
}
