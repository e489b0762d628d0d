import { KilnError } from '../errors.js';
import { opDef } from '../ops/index.js';
import type { RefTensor } from '../ref-tensor.js';
import { atNode, type GraphData, type NodeId, type ValueId } from './graph.js';

/**
 * Evaluates `nodes` of a graph with the float64 reference implementations. `bound` supplies the
 * values of placeholders, variables and anything else computed elsewhere. Slow and obviously
 * right: the oracle for tests, and what constant folding will call.
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
      outs = opDef(node.op).reference(inputs, node.attrs);
    } catch (e) {
      throw atNode(node, e);
    }
    node.outputs.forEach((v, k) => env.set(v, outs[k]!));
  }
  return env;
}
