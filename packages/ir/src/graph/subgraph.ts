import { KilnError } from '../errors.js';
import { type OpName, opDef } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import { formatType, isConcrete } from '../shape.js';
import { atNode, type GraphData, type Node, type NodeId, type Value, type ValueId } from './graph.js';
import type { Region } from './region.js';

/**
 * What a device compiles: a graph whose only sources are its `inputs` (placeholder nodes named
 * in0, in1, ...) and constants, with every shape concrete. Devices never see variables, assigns or
 * user placeholders: the executor binds those. It is the concrete case of a Region (region.ts).
 */
export interface Subgraph extends Region {
  readonly inputs: readonly ValueId[];
  readonly results: readonly ValueId[];
}

export interface ExtractOptions {
  /** The nodes to include, in graph order. */
  readonly nodes: readonly NodeId[];
  /** Values computed outside (feeds, variables, other partitions), with their concrete types. */
  readonly bind: ReadonlyMap<ValueId, ConcreteType>;
  /** Values of the source graph to return, in order. */
  readonly results: readonly ValueId[];
  /**
   * Values that are another value under a new name (an assign's output is the value it stores):
   * their nodes are skipped and uses read the aliased value.
   */
  readonly aliases?: ReadonlyMap<ValueId, ValueId>;
}

/**
 * Copies `nodes` of `graph` into a fresh, concretely typed subgraph: bound values become inputs,
 * and every node's types are inferred again from the bound (concrete) types, so a graph declared
 * with unknown batch sizes compiles for the batch it is run with. Returns the subgraph and the map
 * from source value ids to subgraph value ids.
 */
export function extractSubgraph(
  graph: GraphData,
  options: ExtractOptions,
): { subgraph: Subgraph; valueMap: Map<ValueId, ValueId> } {
  const nodes: Node[] = [];
  const values: Value[] = [];
  const valueMap = new Map<ValueId, ValueId>();
  const inputs: ValueId[] = [];

  const addNode = (
    op: OpName,
    inputIds: ValueId[],
    attrs: Readonly<Record<string, unknown>>,
    types: ConcreteType[],
    name?: string,
  ) => {
    const id = nodes.length;
    const outputs = types.map((type, index) => {
      values.push({ id: values.length, type, node: id, index });
      return values.length - 1;
    });
    nodes.push({ id, op, inputs: inputIds, attrs, outputs, ...(name === undefined ? {} : { name }) });
    return outputs;
  };

  for (const [source, type] of options.bind) {
    const [v] = addNode(
      'placeholder',
      [],
      { name: `in${inputs.length}`, dtype: type.dtype, shape: type.shape },
      [type],
    );
    inputs.push(v!);
    valueMap.set(source, v!);
  }

  for (const id of options.nodes) {
    const node = graph.nodes[id]!;
    if (node.outputs.every((v) => valueMap.has(v))) continue;
    const alias = node.outputs.length === 1 ? options.aliases?.get(node.outputs[0]!) : undefined;
    if (alias !== undefined) {
      const mapped = valueMap.get(alias);
      if (mapped === undefined)
        throw atNode(node, new KilnError('runtime', `aliased value %${alias} is not computed`));
      valueMap.set(node.outputs[0]!, mapped);
      continue;
    }
    if (node.op === 'placeholder' || node.op === 'variable' || node.op === 'assign') {
      throw atNode(node, new KilnError('runtime', `${node.op} must be bound before compiling`));
    }
    const ins = node.inputs.map((v) => {
      const mapped = valueMap.get(v);
      if (mapped === undefined)
        throw atNode(node, new KilnError('runtime', `input %${v} is neither bound nor computed`));
      return mapped;
    });
    let types: ConcreteType[];
    try {
      types = opDef(node.op).infer(
        ins.map((v) => values[v]!.type),
        node.attrs,
      ) as ConcreteType[];
    } catch (e) {
      throw atNode(node, e);
    }
    for (const t of types) {
      if (!isConcrete(t.shape))
        throw atNode(node, new KilnError('shape', `output ${formatType(t)} is not concrete`));
    }
    addNode(node.op, ins, node.attrs, types, node.name).forEach((v, k) => valueMap.set(node.outputs[k]!, v));
  }

  const results = options.results.map((v) => {
    const mapped = valueMap.get(v);
    if (mapped === undefined) throw new KilnError('runtime', `result %${v} is not computed by the subgraph`);
    return mapped;
  });
  return { subgraph: { nodes, values, initializers: [], outputs: {}, inputs, results }, valueMap };
}
