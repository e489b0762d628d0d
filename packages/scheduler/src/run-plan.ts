import { type GraphData, KilnError, type Node, requiredNodes, type ValueId } from '@kiln/ir';

/**
 * What one Session.run does, worked out from the graph alone: which nodes it needs, which values
 * come from outside (fed placeholders, variables), and which variables it assigns. Pure, so it is
 * tested without a device.
 */
export interface RunPlan {
  readonly nodes: readonly number[];
  readonly placeholders: readonly Node[];
  readonly variables: readonly Node[];
  /** Assign nodes: each stores its input into its variable after the run. */
  readonly assigns: readonly Node[];
  /** assign output -> the value it stores. */
  readonly aliases: ReadonlyMap<ValueId, ValueId>;
}

export function planRun(graph: GraphData, fetches: readonly ValueId[]): RunPlan {
  const nodes = requiredNodes(graph, fetches);
  const placeholders: Node[] = [];
  const variables: Node[] = [];
  const assigns: Node[] = [];
  const aliases = new Map<ValueId, ValueId>();
  const assigned = new Map<string, Node>();
  for (const id of nodes) {
    const node = graph.nodes[id]!;
    if (node.op === 'placeholder') placeholders.push(node);
    else if (node.op === 'variable') variables.push(node);
    else if (node.op === 'assign') {
      const name = node.attrs.variable as string;
      const other = assigned.get(name);
      if (other) {
        throw new KilnError(
          'invalid-argument',
          `one run assigns variable '${name}' twice (nodes #${other.id} and #${node.id}); fetch them in separate runs`,
        );
      }
      assigned.set(name, node);
      assigns.push(node);
      aliases.set(node.outputs[0]!, node.inputs[0]!);
    }
  }
  return { nodes, placeholders, variables, assigns, aliases };
}
