import type { DType } from '../dtype.js';
import { KilnError } from '../errors.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import { describeNode, type GraphData, type ValueId } from '../graph/graph.js';
import type { Shape } from '../shape.js';

/** How one copy of a graph is named: its scope, and its placeholders' names and shapes. */
export interface ReplicaSpec {
  /** Prefix of every node and variable name of the copy ('replica1' makes 'replica1/dense1/w'). */
  readonly scope: string;
  readonly placeholderName: (name: string) => string;
  readonly placeholderShape: (name: string, shape: Shape) => Shape;
}

/** One copy of a graph inside another: its tensors by the original's value ids and names. */
export interface Replica {
  /** The copy of the original's value `id`. */
  readonly tensor: (id: ValueId) => SymbolicTensor;
  /** Original placeholder name -> the copy's placeholder. */
  readonly placeholders: ReadonlyMap<string, SymbolicTensor>;
  /** Original variable name -> the copy's variable. */
  readonly variables: ReadonlyMap<string, SymbolicTensor>;
}

/**
 * Appends a copy of `source` to `g`, node by node, in the current device scope (which replaces any
 * device the source asked for: the copy runs where the caller puts it). Variables keep their
 * initializers, copied too: the RNG is counter-based, so every copy computes the same initial
 * weights. Every node is re-checked as it is added, so a copy is as valid as a built graph.
 * Assigns are refused: a copy's updates are the caller's business (see dataParallel).
 */
export function replicate(g: Graph, source: GraphData, spec: ReplicaSpec): Replica {
  const initial = new Map(source.initializers.map((i) => [i.variable, i.value]));
  const map = new Map<ValueId, SymbolicTensor>();
  const placeholders = new Map<string, SymbolicTensor>();
  const variables = new Map<string, SymbolicTensor>();
  const copyOf = (v: ValueId, where: string) => {
    const t = map.get(v);
    if (!t)
      throw new KilnError(
        'invalid-argument',
        `replicate: ${where} reads %${v}, which is not defined before it`,
      );
    return t;
  };
  g.scope(spec.scope, () => {
    for (const node of source.nodes) {
      let outs: SymbolicTensor[];
      if (node.op === 'assign') {
        throw new KilnError(
          'invalid-argument',
          `replicate: ${describeNode(node)} updates variable '${String(node.attrs.variable)}'; ` +
            'the graph to replicate must hold no assigns (build it without an optimizer)',
        );
      } else if (node.op === 'placeholder') {
        const name = String(node.attrs.name);
        const shape = spec.placeholderShape(name, node.attrs.shape as Shape);
        const p = g.placeholder(node.attrs.dtype as DType, shape, spec.placeholderName(name));
        placeholders.set(name, p);
        outs = [p];
      } else if (node.op === 'variable') {
        const name = String(node.attrs.name);
        const init = initial.get(name);
        // g.variable prefixes the scope; a variable without an initializer gets the same name.
        const v =
          init === undefined
            ? g.apply('variable', [], { ...node.attrs, name: `${spec.scope}/${name}` }, name)[0]!
            : g.variable(name, copyOf(init, `the initializer of variable '${name}'`));
        variables.set(name, v);
        outs = [v];
      } else {
        const inputs = node.inputs.map((v) => copyOf(v, describeNode(node)));
        outs = g.apply(node.op, inputs, node.attrs, node.name ?? node.op);
      }
      node.outputs.forEach((v, k) => map.set(v, outs[k]!));
    }
  });
  return {
    tensor: (id) => {
      const t = map.get(id);
      if (!t) throw new KilnError('invalid-argument', `replicate: the source graph has no value %${id}`);
      return t;
    },
    placeholders,
    variables,
  };
}
