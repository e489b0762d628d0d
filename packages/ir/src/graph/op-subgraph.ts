import type { OpName } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import type { Node, Value } from './graph.js';
import type { Subgraph } from './subgraph.js';

/**
 * The subgraph of a single op on inputs of known types: what eager execution compiles (and
 * caches) for each distinct (op, attributes, input types). Built directly, without a builder,
 * because it is on the eager dispatch path; the caller has already inferred `outputs`.
 */
export function opSubgraph(
  op: OpName,
  inputs: readonly ConcreteType[],
  attrs: Readonly<Record<string, unknown>>,
  outputs: readonly ConcreteType[],
): Subgraph {
  const nodes: Node[] = [];
  const values: Value[] = [];
  inputs.forEach((type, i) => {
    values.push({ id: i, type, node: i, index: 0 });
    nodes.push({
      id: i,
      op: 'placeholder',
      inputs: [],
      attrs: { name: `in${i}`, dtype: type.dtype, shape: type.shape },
      outputs: [i],
    });
  });
  const id = nodes.length;
  const results = outputs.map((type, k) => {
    values.push({ id: values.length, type, node: id, index: k });
    return values.length - 1;
  });
  nodes.push({ id, op, inputs: inputs.map((_, i) => i), attrs, outputs: results });
  return { nodes, values, initializers: [], outputs: {}, inputs: inputs.map((_, i) => i), results };
}
