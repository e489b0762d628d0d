import type { GraphData, NodeId, ValueId } from './graph.js';

/**
 * The nodes needed to compute `fetches` (and to run `targets`, such as assigns), in graph order.
 * This is what lets Session.run execute only the part of the graph a fetch depends on.
 */
export function requiredNodes(
  graph: GraphData,
  fetches: readonly ValueId[],
  targets: readonly NodeId[] = [],
): NodeId[] {
  const needed = new Uint8Array(graph.nodes.length);
  const stack: NodeId[] = [...targets, ...fetches.map((v) => graph.values[v]!.node)];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (needed[id]) continue;
    needed[id] = 1;
    for (const v of graph.nodes[id]!.inputs) stack.push(graph.values[v]!.node);
  }
  const out: NodeId[] = [];
  needed.forEach((flag, id) => {
    if (flag) out.push(id);
  });
  return out;
}
