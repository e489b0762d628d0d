import type { TensorValue } from '../attrs.js';
import { DTYPE_INFO } from '../dtype.js';
import { atNode, type GraphData, type Node, type Value, type ValueId } from '../graph/graph.js';
import type { Region } from '../graph/region.js';
import { type OpName, opDef } from '../ops/index.js';
import type { RefTensor } from '../ref-tensor.js';
import type { TensorType } from '../shape.js';

/**
 * Builds the graph a pass returns, node by node. Every copied node's types are inferred again from
 * its (possibly rewritten) inputs, so a pass cannot leave a stale type behind: what comes out
 * verifies if what went in did.
 */
export class GraphWriter {
  readonly nodes: Node[] = [];
  readonly values: Value[] = [];

  add(
    op: OpName,
    inputs: readonly ValueId[],
    attrs: Readonly<Record<string, unknown>>,
    name?: string,
    device?: string,
  ): ValueId[] {
    const id = this.nodes.length;
    let types: TensorType[];
    try {
      types = opDef(op).infer(
        inputs.map((v) => this.values[v]!.type),
        attrs,
      );
    } catch (e) {
      throw atNode({ id, op, ...(name === undefined ? {} : { name }) }, e);
    }
    const outputs = types.map((type, index) => {
      this.values.push({ id: this.values.length, type, node: id, index });
      return this.values.length - 1;
    });
    this.nodes.push({
      id,
      op,
      inputs: [...inputs],
      attrs,
      outputs,
      ...(name === undefined ? {} : { name }),
      ...(device === undefined ? {} : { device }),
    });
    return outputs;
  }

  /** Copies `node` onto new inputs (and optionally new attributes). */
  copy(
    node: Node,
    inputs: readonly ValueId[],
    attrs: Readonly<Record<string, unknown>> = node.attrs,
  ): ValueId[] {
    return this.add(node.op, inputs, attrs, node.name, node.device);
  }

  /** A constant node holding a reference tensor, stored in its dtype. */
  constant(t: RefTensor, name?: string, device?: string): ValueId {
    const data = DTYPE_INFO[t.dtype].create(t.data.length);
    data.set(t.data);
    const value: TensorValue = { dtype: t.dtype, shape: [...t.shape], data };
    return this.add('constant', [], { value }, name, device)[0]!;
  }

  graph(source: GraphData, map: ReadonlyMap<ValueId, ValueId>): GraphData {
    const at = (v: ValueId) => map.get(v)!;
    return {
      nodes: this.nodes,
      values: this.values,
      initializers: source.initializers.map((i) => ({ variable: i.variable, value: at(i.value) })),
      outputs: Object.fromEntries(Object.entries(source.outputs).map(([k, v]) => [k, at(v)])),
    };
  }

  region(source: Region, map: ReadonlyMap<ValueId, ValueId>): Region {
    return {
      ...this.graph(source, map),
      inputs: source.inputs.map((v) => map.get(v)!),
      results: source.results.map((v) => map.get(v)!),
    };
  }
}

/** What a pass gives back: the new graph, and where each old value went (if it survived). */
export interface PassResult {
  readonly graph: GraphData;
  readonly valueMap: ReadonlyMap<ValueId, ValueId>;
}
