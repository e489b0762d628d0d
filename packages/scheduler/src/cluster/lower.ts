import { type ExecutionPlan, type PartitionInput, type PartitionPlan, parseUnit } from '../plan/plan.js';
import type { ToWorker, WireMemory } from './protocol.js';
import type { ScheduledPartition } from './run-scheduler.js';
import { subgraphToBytes } from './subgraph-bytes.js';

export type LoadMessage = Omit<Extract<ToWorker, { t: 'load' }>, 'request'>;

/** A plan lowered for workers: what each loads, and the table the coordinator schedules from. */
export interface LoweredPlan {
  readonly loads: readonly { readonly worker: string; readonly message: LoadMessage }[];
  readonly partitions: readonly ScheduledPartition[];
  readonly fetchCount: number;
  /** Which worker holds each variable the plan reads or assigns. */
  readonly variables: ReadonlyMap<string, string>;
  /** Placeholder names the runs must feed. */
  readonly feeds: readonly string[];
}

/** A partition's key on its worker: `prefix/device#stage`, with `.part` where the stage has several. */
export const partitionKey = (prefix: string, p: Pick<PartitionPlan, 'device' | 'stage' | 'part'>) =>
  `${prefix}/${p.device}#${p.stage}${p.part > 0 ? `.${p.part}` : ''}`;

/**
 * Lowers an ExecutionPlan whose devices are workers (the planning devices carry the workers'
 * names): each partition becomes a load message (its subgraph as graph bytes, its memory layout,
 * its inputs and outputs) and a row of the coordinator's table. `prefix` keeps the partition keys
 * of different plans on one worker apart.
 */
export function lowerPlan(plan: ExecutionPlan, prefix: string): LoweredPlan {
  const variables = new Map<string, string>();
  const feeds = new Set<string>();
  // Which worker takes each value sent between partitions: the same worker keeps it where it is;
  // another has it pushed straight to it. Either way only the order passes the coordinator.
  const consumer = new Map<string, string>();
  for (const p of plan.partitions)
    for (const i of p.inputs) if (i.kind === 'recv') consumer.set(i.key, p.device);
  const local = (p: PartitionPlan, key: string) => consumer.get(key) === p.device;
  const fromHere = (p: PartitionPlan, i: PartitionInput) =>
    i.kind === 'recv' && parseUnit(i.from).device === p.device;
  const fetched = (v: number) => plan.fetches.includes(v);
  const loads = plan.partitions.map((p) => {
    const memory: WireMemory = {
      order: [...p.memory.order],
      arenaBytes: p.memory.arenaBytes,
      offsets: [...p.memory.buffers].map(([v, b]) => [v, b.offset] as const),
    };
    const message: LoadMessage = {
      t: 'load',
      partition: partitionKey(prefix, p),
      graph: subgraphToBytes(p.subgraph),
      memory,
      inputs: p.inputs.map((i) =>
        i.kind === 'variable'
          ? { kind: 'variable', name: i.name }
          : i.kind === 'recv'
            ? { kind: fromHere(p, i) ? 'local' : 'peer', name: i.key }
            : { kind: 'arg', name: i.name },
      ),
      outputs: p.outputs.map((o) => {
        if (o.kind === 'assign') return { kind: 'assign', name: o.variable };
        const keys = o.kind === 'send' ? o.keys : [];
        const keep = keys.filter((k) => local(p, k));
        const push = keys.filter((k) => !local(p, k)).map((k) => [consumer.get(k)!, k] as const);
        return {
          kind: fetched(o.value) ? 'return' : 'keep',
          name: `%${o.value}`,
          ...(keep.length ? { keep } : {}),
          ...(push.length ? { push } : {}),
        };
      }),
    };
    return { worker: p.device, message };
  });
  const partitions = plan.partitions.map((p): ScheduledPartition => {
    const reads: string[] = [];
    const writes: string[] = [];
    for (const i of p.inputs) {
      if (i.kind === 'variable') {
        reads.push(i.name);
        variables.set(i.name, p.device);
      } else if (i.kind === 'feed') feeds.add(i.name);
    }
    for (const o of p.outputs) {
      if (o.kind !== 'assign') continue;
      writes.push(o.variable);
      variables.set(o.variable, p.device);
    }
    return {
      key: partitionKey(prefix, p),
      worker: p.device,
      stage: p.stage,
      part: p.part,
      args: p.inputs.flatMap((i) => (i.kind === 'feed' ? [{ feed: i.name }] : [])),
      returns: p.outputs.flatMap((o) => {
        if (o.kind === 'assign' || !fetched(o.value)) return [];
        return [{ values: [], fetches: plan.fetches.flatMap((f, i) => (f === o.value ? [i] : [])) }];
      }),
      // Kept here or pushed to a peer, a value is ordering to the coordinator: its consumer is
      // dispatched once its producer has finished.
      keeps: p.outputs.flatMap((o) => (o.kind === 'send' ? [...o.keys] : [])),
      waits: p.inputs.flatMap((i) => (i.kind === 'recv' ? [i.key] : [])),
      reads,
      writes,
    };
  });
  return { loads, partitions, fetchCount: plan.fetches.length, variables, feeds: [...feeds] };
}
