import type { TensorValue } from '../attrs.js';
import { clip, KilnError } from '../errors.js';
import { isOpName, type OpName, opDef } from '../ops/index.js';
import type { TensorType } from '../shape.js';

export type ValueId = number;
export type NodeId = number;

export interface Node {
  readonly id: NodeId;
  readonly op: OpName;
  readonly inputs: readonly ValueId[];
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly outputs: readonly ValueId[];
  /** A user-facing name, with its name scope ("dense1/matmul"); used in errors and the printer. */
  readonly name?: string;
  /**
   * The device the program asked for (an `onDevice` scope around it): a placement hint, which the
   * placer honours or overrides with a warning. Passes never merge nodes across devices.
   */
  readonly device?: string;
}

export interface Value {
  readonly id: ValueId;
  readonly type: TensorType;
  readonly node: NodeId;
  readonly index: number;
}

/** How a variable gets its first value: `value` is computed in the same graph. */
export interface Initializer {
  readonly variable: string;
  readonly value: ValueId;
}

/**
 * An IR graph: SSA values, nodes in an order where every input is defined before use. Nodes are
 * only ever appended, so a graph that verifies stays valid as it grows, and a Session can cache
 * what it compiled for the first n nodes.
 */
export interface GraphData {
  readonly nodes: readonly Node[];
  readonly values: readonly Value[];
  readonly initializers: readonly Initializer[];
  /** Named outputs: how a program that loads a serialized graph finds what to fetch. */
  readonly outputs: Readonly<Record<string, ValueId>>;
}

export function describeNode(node: Pick<Node, 'id' | 'op' | 'name'>): string {
  return `node #${node.id} (${node.op}${node.name ? ` '${node.name}'` : ''})`;
}

/** Wraps an error raised while handling a node so that its message says which node. */
export function atNode(node: Pick<Node, 'id' | 'op' | 'name'>, error: unknown): KilnError {
  const where = describeNode(node);
  if (error instanceof KilnError) {
    return new KilnError(error.code, `${where}: ${error.message}`, { cause: error });
  }
  return new KilnError('runtime', `${where}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

export function placeholderNodes(graph: GraphData): Node[] {
  return graph.nodes.filter((n) => n.op === 'placeholder');
}

export function variableNodes(graph: GraphData): Node[] {
  return graph.nodes.filter((n) => n.op === 'variable');
}

export function constantValue(node: Node): TensorValue {
  return node.attrs.value as TensorValue;
}

/** Parses and validates the attributes of `op` against its schema (fills defaults). */
export function parseAttrs(
  op: OpName,
  raw: Readonly<Record<string, unknown>>,
  where: string,
): Record<string, unknown> {
  const schema = opDef(op).attrs;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(schema, key))
      throw new KilnError('invalid-argument', `${where}: unknown attribute '${clip(key)}'`);
  }
  for (const [key, a] of Object.entries(schema)) out[key] = a.parse(raw[key], `${where}: attribute '${key}'`);
  return out;
}

export { isOpName };
