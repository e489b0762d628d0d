import type { ExecutionPlan, PartitionPlan } from '../plan/plan.js';
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
          : { kind: 'arg', name: i.kind === 'recv' ? i.key : i.name },
      ),
      outputs: p.outputs.map((o) =>
        o.kind === 'assign' ? { kind: 'assign', name: o.variable } : { kind: 'return', name: `%${o.value}` },
      ),
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
        i.kind === 'variable' ? [] : [i.kind === 'recv' ? { value: i.key } : { feed: i.name }],
      ),
      returns: p.outputs.flatMap((o) =>
        o.kind === 'assign'
          ? []
          : [
              {
                values: o.kind === 'send' ? o.keys : [],
                fetches: plan.fetches.flatMap((f, i) => (f === o.value ? [i] : [])),
              },
            ],
      ),
      reads,
      writes,
      label: `${p.subgraph.nodes.length} nodes`,
    };
  });
  return { loads, partitions, fetchCount: plan.fetches.length, variables, feeds: [...feeds] };
}
