import type { NodeQuery, Support } from '../abi/device.js';
import type { OpContext, TensorHandle } from '../api/handle.js';
import type { TensorValue } from '../attrs.js';
import { KilnError } from '../errors.js';
import { atNode, describeNode, type Node, parseAttrs, type Value, type ValueId } from '../graph/graph.js';
import type { Subgraph } from '../graph/subgraph.js';
import { EXECUTOR_OPS, type OpName, opDef } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import { formatType, isConcrete, shapesEqual } from '../shape.js';
import { GraphWriter } from './writer.js';

/** What expansion asks of a device: its name (for errors) and its answer per node. */
export interface SupportOracle {
  readonly name: string;
  supports(node: NodeQuery): Support;
}

/** One composite a device declined, and what it became. */
export interface Expansion {
  /** The node as the caller's subgraph names it, such as "node #4 (softmax 'probs')". */
  readonly node: string;
  readonly op: OpName;
  /** The device's reason for declining it. */
  readonly reason: string;
  /** How many nodes replaced it. */
  readonly into: number;
}

export interface Expanded {
  /** The same subgraph when the device runs every node, otherwise a new one. */
  readonly subgraph: Subgraph;
  readonly expansions: readonly Expansion[];
}

/**
 * Rewrites `subgraph` so that `device` runs every node: each node it declines through `supports`
 * is replaced by the op's decomposition (the ops of its `decompose` rule, themselves expanded where
 * the device declines them too). A declined primitive is an error naming the device, the node and
 * its reason: nothing below a primitive to fall back to. Inputs and results keep their order, so
 * the result binds the same buffers as the original; a subgraph the device runs whole comes back
 * as it is, unchanged.
 */
export function expandComposites(subgraph: Subgraph, device: SupportOracle): Expanded {
  if (subgraph.nodes.every((n) => EXECUTOR_OPS.has(n.op) || device.supports(queryOf(subgraph, n)).ok))
    return { subgraph, expansions: [] };
  const e = new Expander(device);
  const map = new Map<ValueId, ValueId>();
  for (const node of subgraph.nodes) {
    const inputs = node.inputs.map((v) => map.get(v)!);
    const types = node.outputs.map((v) => subgraph.values[v]!.type as ConcreteType);
    let outs: ValueId[];
    try {
      outs = EXECUTOR_OPS.has(node.op)
        ? e.add(node.op, inputs, node.attrs, node)
        : e.emit(node.op, inputs, node.attrs, types, node, describeNode(node));
    } catch (err) {
      throw atNode(node, err);
    }
    node.outputs.forEach((v, k) => map.set(v, outs[k]!));
  }
  return {
    subgraph: {
      nodes: e.nodes,
      values: e.values,
      initializers: [],
      outputs: {},
      inputs: subgraph.inputs.map((v) => map.get(v)!),
      results: subgraph.results.map((v) => map.get(v)!),
    },
    expansions: e.expansions,
  };
}

/**
 * Whether `device` runs the node of `query`, directly or through its expansion, and at what
 * estimated cost (the sum of the expansion's nodes): what the placer asks of each device.
 */
export function supportWithExpansion(device: SupportOracle, query: NodeQuery): Support {
  const direct = device.supports(query);
  // Executor ops have no decomposition: their answer stands too.
  if (direct.ok || opDef(query.op).decompose === undefined) return direct;
  const e = new Expander(device);
  try {
    const inputs = query.inputs.map((t, i) => e.add('placeholder', [], { name: `in${i}`, ...t })[0]!);
    e.emit(query.op, inputs, query.attrs, [...query.outputs], undefined, query.op);
  } catch (err) {
    return { ok: false, reason: `${direct.reason}; its expansion does not run either: ${messageOf(err)}` };
  }
  return { ok: true, seconds: e.seconds };
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

function queryOf(subgraph: Subgraph, node: Node): NodeQuery {
  const typeOf = (v: ValueId) => subgraph.values[v]!.type as ConcreteType;
  return {
    op: node.op,
    attrs: node.attrs,
    inputs: node.inputs.map(typeOf),
    outputs: node.outputs.map(typeOf),
  };
}

/** A value under construction, as the decomposition rules' op API sees it. */
class Handle implements TensorHandle {
  constructor(
    readonly context: Expander,
    readonly id: ValueId,
    readonly type: ConcreteType,
  ) {}
  get dtype() {
    return this.type.dtype;
  }
  get shape() {
    return this.type.shape;
  }
}

/**
 * Builds the expanded subgraph. Decomposition rules call the op API on Handles, which lands in
 * `apply`: every op they emit is checked against the device like the subgraph's own nodes.
 */
class Expander implements OpContext<Handle> {
  readonly level = 1;
  private readonly writer = new GraphWriter();
  readonly nodes: Node[] = this.writer.nodes;
  readonly values: Value[] = this.writer.values;
  readonly expansions: Expansion[] = [];
  /** Estimated seconds of every node emitted, by the device's own answers. */
  seconds = 0;
  private depth = 0;

  constructor(private readonly device: SupportOracle) {}

  /** A node as it is (types inferred again from its inputs, as every pass writes nodes). */
  add(
    op: OpName,
    inputs: readonly ValueId[],
    attrs: Readonly<Record<string, unknown>>,
    like?: Pick<Node, 'name' | 'device'>,
  ): ValueId[] {
    return this.writer.add(op, inputs, attrs, like?.name, like?.device);
  }

  /** Adds the node if the device runs it, else its expansion; returns the values it computes. */
  emit(
    op: OpName,
    inputs: readonly ValueId[],
    attrs: Readonly<Record<string, unknown>>,
    types: readonly ConcreteType[],
    like: Pick<Node, 'name' | 'device'> | undefined,
    what: string,
  ): ValueId[] {
    const inTypes = inputs.map((v) => this.values[v]!.type as ConcreteType);
    const support = this.device.supports({ op, attrs, inputs: inTypes, outputs: types });
    if (support.ok) {
      this.seconds += support.seconds;
      return this.add(op, inputs, attrs, like);
    }
    const rule = opDef(op).decompose;
    if (!rule)
      throw new KilnError(
        'unsupported',
        `${this.device.name} cannot run ${op}(${inTypes.map(formatType).join(', ')}): ${support.reason}. ` +
          `${op} is a primitive, which every device must run, so there is nothing to fall back to`,
      );
    // A rule that (wrongly) reached itself would recurse until the stack ran out.
    if (++this.depth > MAX_EXPANSION_DEPTH)
      throw new KilnError('runtime', `expanding ${op} nested ${MAX_EXPANSION_DEPTH} composites deep`);
    const before = this.nodes.length;
    try {
      const outs = rule({ attrs, inputs: inputs.map((v, i) => new Handle(this, v, inTypes[i]!)) }).map(
        (h) => (h as Handle).id,
      );
      outs.forEach((v, k) => {
        const got = this.values[v]!.type;
        const want = types[k];
        if (!want || got.dtype !== want.dtype || !shapesEqual(got.shape, want.shape))
          throw new KilnError(
            'runtime',
            `the decomposition of ${op} gave ${formatType(got)} for output ${k}, but ${op} infers ${want ? formatType(want) : 'no such output'}`,
          );
      });
      if (outs.length !== types.length)
        throw new KilnError(
          'runtime',
          `the decomposition of ${op} gave ${outs.length} outputs, not ${types.length}`,
        );
      // The nodes it made run where the node would have.
      if (like?.device !== undefined)
        for (let i = before; i < this.nodes.length; i++)
          this.nodes[i] = { ...this.nodes[i]!, device: like.device };
      this.expansions.push({ node: what, op, reason: support.reason, into: this.nodes.length - before });
      return outs;
    } finally {
      this.depth--;
    }
  }

  apply(op: OpName, inputs: readonly Handle[], attrs: Readonly<Record<string, unknown>>): Handle[] {
    const parsed = parseAttrs(op, attrs, op);
    const types = opDef(op).infer(
      inputs.map((h) => h.type),
      parsed,
    );
    for (const t of types)
      if (!isConcrete(t.shape))
        throw new KilnError('shape', `expanding: ${op} gave ${formatType(t)}, which is not concrete`);
    const concrete = types as ConcreteType[];
    return this.emit(
      op,
      inputs.map((h) => h.id),
      parsed,
      concrete,
      undefined,
      op,
    ).map((v, k) => new Handle(this, v, concrete[k]!));
  }

  constant(value: TensorValue): Handle {
    return this.apply('constant', [], { value })[0]!;
  }
}

/** Composites built of composites nest a few levels (sigmoid -> neg -> mul); far fewer than this. */
const MAX_EXPANSION_DEPTH = 32;
