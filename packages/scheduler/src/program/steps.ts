import type { GraphData, Node, NodeId, ValueId } from '@kiln/ir';

/** A run of ordinary nodes compiled as one subgraph on the device. */
export interface SegmentStep {
  readonly kind: 'segment';
  readonly nodes: readonly NodeId[];
  /** Values the segment reads from outside it, in binding order. */
  readonly inputs: readonly ValueId[];
  /** Values the segment produces that later steps or the program's outputs need. */
  readonly results: readonly ValueId[];
}

/** A cond or while node: run by the executor, which reads the predicate on the host. */
export interface ControlStep {
  readonly kind: 'control';
  readonly node: Node;
}

export type Step = SegmentStep | ControlStep;

export const isControl = (node: Node): boolean => node.op === 'cond' || node.op === 'while';

/**
 * Splits `nodes` (in graph order) into steps: maximal runs of device nodes, cut at each control
 * node. Reads of an alias (an assign's output) resolve to the value it stores. Pure, so the cut is
 * tested without a device.
 */
export function planSteps(
  graph: GraphData,
  nodes: readonly NodeId[],
  bound: ReadonlySet<ValueId>,
  outputs: readonly ValueId[],
  aliases: ReadonlyMap<ValueId, ValueId> = new Map(),
): Step[] {
  const resolve = (v: ValueId) => aliases.get(v) ?? v;
  const groups: (NodeId[] | Node)[] = [];
  let current: NodeId[] = [];
  for (const id of nodes) {
    const node = graph.nodes[id]!;
    // Alias nodes stay in their segment: extraction maps their output to the aliased value.
    if (node.outputs.every((v) => bound.has(v))) continue;
    if (isControl(node)) {
      if (current.length) groups.push(current);
      groups.push(node);
      current = [];
    } else current.push(id);
  }
  if (current.length) groups.push(current);

  // Which steps read each value (by resolved id), to know what a segment must hand on.
  const readers = new Map<ValueId, Set<number>>();
  groups.forEach((g, i) => {
    const ids = Array.isArray(g) ? g : [g.id];
    for (const id of ids)
      for (const v of graph.nodes[id]!.inputs) {
        const r = resolve(v);
        if (!readers.has(r)) readers.set(r, new Set());
        readers.get(r)!.add(i);
      }
  });
  const finalOutputs = new Set(outputs.map(resolve));

  return groups.map((g, i): Step => {
    if (!Array.isArray(g)) return { kind: 'control', node: g };
    const produced = new Set(g.flatMap((id) => graph.nodes[id]!.outputs.map(resolve)));
    const inputs: ValueId[] = [];
    for (const id of g) {
      for (const v of graph.nodes[id]!.inputs) {
        const r = resolve(v);
        if (!produced.has(r) && !inputs.includes(r)) inputs.push(r);
      }
    }
    const results = [...produced].filter(
      (v) => finalOutputs.has(v) || [...(readers.get(v) ?? [])].some((s) => s !== i),
    );
    return { kind: 'segment', nodes: g, inputs, results };
  });
}
