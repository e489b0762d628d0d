import type { NodeId, Subgraph, ValueId } from '@kiln/ir';
import { alignUp, valueBytes } from './memory-liveness.js';

/**
 * A topological order that, among the nodes ready to run, picks the one that frees the most bytes
 * less what it allocates (the first in `base` on a tie): a cheap list scheduler that keeps the live
 * set small, letting one branch finish before another starts where the graph allows.
 */
export function greedyOrder(
  subgraph: Subgraph,
  base: readonly NodeId[],
  pinned: ReadonlySet<ValueId>,
  alignment: number,
): NodeId[] {
  const rank = new Map(base.map((id, i) => [id, i] as const));
  const bytes = (v: ValueId) => (pinned.has(v) ? 0 : alignUp(valueBytes(subgraph, v), alignment));
  const consumersLeft = new Map<ValueId, number>();
  const waitingOn = new Map<NodeId, number>();
  const users = new Map<NodeId, NodeId[]>();
  for (const node of subgraph.nodes) {
    const producers = new Set(node.inputs.map((v) => subgraph.values[v]!.node));
    waitingOn.set(node.id, producers.size);
    for (const p of producers) {
      const list = users.get(p);
      if (list) list.push(node.id);
      else users.set(p, [node.id]);
    }
    for (const v of new Set(node.inputs)) consumersLeft.set(v, (consumersLeft.get(v) ?? 0) + 1);
  }
  const score = (id: NodeId) => {
    const node = subgraph.nodes[id]!;
    let gain = 0;
    for (const v of new Set(node.inputs)) if (consumersLeft.get(v) === 1) gain += bytes(v);
    for (const v of node.outputs) gain -= bytes(v);
    return gain;
  };

  const ready = subgraph.nodes.filter((n) => waitingOn.get(n.id) === 0).map((n) => n.id);
  const order: NodeId[] = [];
  while (ready.length > 0) {
    let pick = 0;
    let pickScore = score(ready[0]!);
    for (let i = 1; i < ready.length; i++) {
      const s = score(ready[i]!);
      if (s > pickScore || (s === pickScore && rank.get(ready[i]!)! < rank.get(ready[pick]!)!)) {
        pick = i;
        pickScore = s;
      }
    }
    const id = ready.splice(pick, 1)[0]!;
    order.push(id);
    const node = subgraph.nodes[id]!;
    for (const v of new Set(node.inputs)) consumersLeft.set(v, consumersLeft.get(v)! - 1);
    for (const u of users.get(id) ?? []) {
      const left = waitingOn.get(u)! - 1;
      waitingOn.set(u, left);
      if (left === 0) ready.push(u);
    }
  }
  return order;
}
