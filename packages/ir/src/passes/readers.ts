import type { GraphData, NodeId, ValueId } from '../graph/graph.js';

/** The nodes that read each value (a value no node reads has no entry). */
export function readersOf(graph: GraphData): Map<ValueId, Set<NodeId>> {
  const readers = new Map<ValueId, Set<NodeId>>();
  for (const node of graph.nodes) {
    for (const v of node.inputs) {
      let set = readers.get(v);
      if (!set) readers.set(v, (set = new Set()));
      set.add(node.id);
    }
  }
  return readers;
}
