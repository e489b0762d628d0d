import type { ExecutionPlan, PartitionInput, PartitionPlan } from '../plan/plan.js';
import type { ScheduledPartition } from './coordinator.js';
import type { ToWorker, WireMemory } from './protocol.js';
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

const partitionKey = (prefix: string, p: PartitionPlan) => `${prefix}/${p.device}#${p.stage}`;

/**
 * Lowers an ExecutionPlan whose devices are workers (the planning devices carry the workers'
 * names): each partition becomes a load message (its subgraph as graph bytes, its memory layout,
 * its inputs and outputs) and a row of the coordinator's table. `prefix` keeps the partition keys
 * of different plans on one worker apart.
 */
export function lowerPlan(plan: ExecutionPlan, prefix: string): LoweredPlan {
  const variables = new Map<string, string>();
  const feeds = new Set<string>();
  // A value sent between two partitions of one worker stays on it: only the order crosses.
  const consumer = new Map<string, string>();
  for (const p of plan.partitions)
    for (const i of p.inputs) if (i.kind === 'recv') consumer.set(i.key, p.device);
  const local = (p: PartitionPlan, key: string) => consumer.get(key) === p.device;
  const fromHere = (p: PartitionPlan, i: PartitionInput) =>
    i.kind === 'recv' && i.from.split('#')[0] === p.device;
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
            ? { kind: fromHere(p, i) ? 'local' : 'arg', name: i.key }
            : { kind: 'arg', name: i.name },
      ),
      outputs: p.outputs.map((o) => {
        if (o.kind === 'assign') return { kind: 'assign', name: o.variable };
        const keep = o.kind === 'send' ? o.keys.filter((k) => local(p, k)) : [];
        const returned = fetched(o.value) || (o.kind === 'send' && o.keys.some((k) => !local(p, k)));
        return { kind: returned ? 'return' : 'keep', name: `%${o.value}`, ...(keep.length ? { keep } : {}) };
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
      args: p.inputs.flatMap((i) =>
        i.kind === 'variable' || fromHere(p, i)
          ? []
          : [i.kind === 'recv' ? { value: i.key } : { feed: i.name }],
      ),
      returns: p.outputs.flatMap((o) => {
        if (o.kind === 'assign') return [];
        const remote = o.kind === 'send' ? o.keys.filter((k) => !local(p, k)) : [];
        if (!fetched(o.value) && remote.length === 0) return [];
        return [{ values: remote, fetches: plan.fetches.flatMap((f, i) => (f === o.value ? [i] : [])) }];
      }),
      keeps: p.outputs.flatMap((o) => (o.kind === 'send' ? o.keys.filter((k) => local(p, k)) : [])),
      waits: p.inputs.flatMap((i) => (i.kind === 'recv' && fromHere(p, i) ? [i.key] : [])),
      reads,
      writes,
    };
  });
  return { loads, partitions, fetchCount: plan.fetches.length, variables, feeds: [...feeds] };
}
