import { KilnError } from '../errors.js';
import type { RefTensor } from '../ref-tensor.js';
import { atNode, type GraphData, type NodeId, type ValueId } from './graph.js';
import { evaluateNode } from './reference-budget.js';

/**
 * Evaluates `nodes` of a graph with the float64 reference implementations. `bound` supplies the
 * values of placeholders, variables and anything else computed elsewhere. Slow and obviously
 * right: the oracle for tests, and what constant folding calls (under a ReferenceBudget).
 */
export function interpret(
  graph: GraphData,
  nodes: readonly NodeId[],
  bound: ReadonlyMap<ValueId, RefTensor>,
): Map<ValueId, RefTensor> {
  const env = new Map(bound);
  for (const id of nodes) {
    const node = graph.nodes[id]!;
    if (node.outputs.every((v) => env.has(v))) continue;
    const inputs = node.inputs.map((v) => {
      const t = env.get(v);
      if (!t) throw atNode(node, new KilnError('runtime', `input %${v} has no value`));
      return t;
    });
    let outs: RefTensor[];
    try {
      outs = evaluateNode(
        node,
        inputs,
        node.outputs.map((v) => graph.values[v]!.type),
      );
    } catch (e) {
      throw atNode(node, e);
    }
    node.outputs.forEach((v, k) => env.set(v, outs[k]!));
  }
  return env;
}
