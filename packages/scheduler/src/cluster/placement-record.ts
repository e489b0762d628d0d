import type { ExecutionPlan } from '../plan/plan.js';
import type { PlacedPartition } from './coordinator.js';
import { type LoweredPlan, partitionKey } from './lower.js';

/** What the coordinator records of a placed plan: its partitions, its variables' homes, and why. */
export interface PlacementRecord {
  readonly plan: string;
  readonly partitions: readonly PlacedPartition[];
  readonly variables: readonly { readonly name: string; readonly worker: string; readonly reason: string }[];
}

/**
 * The placer's reasons, gathered per partition (the distinct ones, most common first: "hint
 * worker:1", "colocated with variable 'w'...", "earliest finish: ...") and per variable.
 */
export function placementRecord(plan: ExecutionPlan, lowered: LoweredPlan, prefix: string): PlacementRecord {
  const byDevice = new Map<string, Map<string, number>>();
  for (const { device, reason } of plan.placement.values()) {
    const counts = byDevice.get(device) ?? new Map<string, number>();
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
    byDevice.set(device, counts);
  }
  const reasonOf = new Map(
    plan.graph.nodes.flatMap((n) =>
      n.op === 'variable'
        ? [[String(n.attrs.name), plan.placement.get(n.id)?.reason ?? 'unknown'] as const]
        : [],
    ),
  );
  const keyed = new Map(lowered.loads.map((l) => [l.message.partition, l.worker] as const));
  const byKey = new Map<string, (typeof plan.partitions)[number]>(
    plan.partitions.map((p) => [partitionKey(prefix, p), p]),
  );
  return {
    plan: prefix,
    partitions: [...keyed].map(([key, worker]) => {
      const p = byKey.get(key);
      const counts = [...(byDevice.get(worker) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1]);
      return { key, worker, nodes: p?.subgraph.nodes.length ?? 0, reasons: counts.map(([r]) => r) };
    }),
    variables: [...lowered.variables].map(([name, worker]) => ({
      name,
      worker,
      reason: reasonOf.get(name) ?? 'unknown',
    })),
  };
}
