import type { DType } from '../dtype.js';
import { KilnError } from '../errors.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import { describeNode, type GraphData, type Node, type ValueId } from '../graph/graph.js';
import { requiredNodes } from '../graph/prune.js';
import { formatType, type Shape } from '../shape.js';

/** How one copy of a graph is named: its scope, and its placeholders' names and shapes. */
export interface ReplicaSpec {
  /** Prefix of every node and variable name of the copy ('replica1' makes 'replica1/dense1/w'). */
  readonly scope: string;
  readonly placeholderName: (name: string) => string;
  readonly placeholderShape: (name: string, shape: Shape) => Shape;
  /**
   * Variables of `g` to read instead of creating the copy's own (original name -> variable, of the
   * same dtype and shape; see replicateVariables): several copies then share one set of weights,
   * as the micro-batches of one device do. The nodes only the initializers need are left out.
   */
  readonly variables?: ReadonlyMap<string, SymbolicTensor>;
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

const fail = (message: string) => new KilnError('invalid-argument', message);

/** The nodes that compute the initializers (the variables' first values), and nothing else. */
function initializerOnly(source: GraphData): Set<number> {
  const init = new Set(
    requiredNodes(
      source,
      source.initializers.map((i) => i.value),
    ),
  );
  const others = source.nodes.filter((n) => !init.has(n.id)).map((n) => n.id);
  // A node an initializer shares with the rest of the graph (or a named output) is needed anyway.
  const needed = new Set(requiredNodes(source, Object.values(source.outputs), others));
  return new Set([...init].filter((id) => !needed.has(id)));
}

/** The copy of one node: a variable node is the caller's business, everything else is re-applied. */
type CopyVariable = (node: Node, copyOf: (v: ValueId, where: string) => SymbolicTensor) => SymbolicTensor;

/** Appends the nodes of `source` that `include` picks to `g`, in the current device scope. */
function copyNodes(
  g: Graph,
  source: GraphData,
  spec: Pick<ReplicaSpec, 'scope' | 'placeholderName' | 'placeholderShape'>,
  include: (node: Node) => boolean,
  copyVariable: CopyVariable,
): Replica {
  const map = new Map<ValueId, SymbolicTensor>();
  const placeholders = new Map<string, SymbolicTensor>();
  const variables = new Map<string, SymbolicTensor>();
  const copyOf = (v: ValueId, where: string) => {
    const t = map.get(v);
    if (!t) throw fail(`replicate: ${where} reads %${v}, which is not defined before it`);
    return t;
  };
  g.scope(spec.scope, () => {
    for (const node of source.nodes) {
      if (!include(node)) continue;
      let outs: SymbolicTensor[];
      if (node.op === 'assign') {
        throw fail(
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
        const v = copyVariable(node, copyOf);
        variables.set(String(node.attrs.name), v);
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
      if (t) return t;
      throw fail(
        id >= 0 && id < source.values.length
          ? `replicate: value %${id} of the source graph only computes an initializer; a copy that shares variables has no copy of it`
          : `replicate: the source graph has no value %${id}`,
      );
    },
    placeholders,
    variables,
  };
}

/** A variable of its own for the copy, started by its copied initializer. */
function ownVariable(g: Graph, source: GraphData): CopyVariable {
  const initial = new Map(source.initializers.map((i) => [i.variable, i.value]));
  return (node, copyOf) => {
    const name = String(node.attrs.name);
    const init = initial.get(name);
    // g.variable prefixes the scopes; a variable without an initializer is named the same way.
    return init === undefined
      ? g.apply('variable', [], { ...node.attrs, name: g.scopedName(name) }, name)[0]!
      : g.variable(name, copyOf(init, `the initializer of variable '${name}'`));
  };
}

/**
 * Appends a copy of `source` to `g`, node by node, in the current device scope (which replaces any
 * device the source asked for: the copy runs where the caller puts it). Variables keep their
 * initializers, copied too: the RNG is counter-based, so every copy computes the same initial
 * weights. With `spec.variables` the copy reads those variables instead. Every node is re-checked
 * as it is added, so a copy is as valid as a built graph. Assigns are refused: a copy's updates are
 * the caller's business (see dataParallel).
 */
export function replicate(g: Graph, source: GraphData, spec: ReplicaSpec): Replica {
  const given = spec.variables;
  if (!given) return copyNodes(g, source, spec, () => true, ownVariable(g, source));
  const skip = initializerOnly(source);
  return copyNodes(
    g,
    source,
    spec,
    (node) => !skip.has(node.id),
    (node) => {
      const name = String(node.attrs.name);
      const v = given.get(name);
      if (!v)
        throw fail(
          `replicate: no variable given for '${name}' of the source graph; given: ${[...given.keys()].join(', ') || 'none'}`,
        );
      const want = { dtype: node.attrs.dtype as DType, shape: node.attrs.shape as Shape };
      if (v.graph !== g || v.node.op !== 'variable')
        throw fail(`replicate: the variable given for '${name}' (${v}) is not a variable of this graph`);
      if (
        v.dtype !== want.dtype ||
        v.shape.length !== want.shape.length ||
        v.shape.some((d, i) => d !== want.shape[i])
      )
        throw fail(
          `replicate: the variable given for '${name}' is ${formatType(v.type)}; the source's is ${formatType(want)}`,
        );
      return v;
    },
  );
}

/**
 * Copies only the variables of `source`, with their initializers, inside `scope` and the current
 * device scope: one device's set of weights, for copies made with `spec.variables` to share.
 * Returns them by their original names.
 */
export function replicateVariables(
  g: Graph,
  source: GraphData,
  scope: string,
): ReadonlyMap<string, SymbolicTensor> {
  const init = new Set(
    requiredNodes(
      source,
      source.initializers.map((i) => i.value),
    ),
  );
  // Reached only for a placeholder an initializer reads: a first value that would need a feed.
  const noPlaceholder = (name: string): never => {
    throw fail(
      `replicateVariables: an initializer reads placeholder '${name}'; a variable's first value must not need a feed`,
    );
  };
  return copyNodes(
    g,
    source,
    { scope, placeholderName: noPlaceholder, placeholderShape: noPlaceholder },
    (node) => node.op === 'variable' || init.has(node.id),
    ownVariable(g, source),
  ).variables;
}
