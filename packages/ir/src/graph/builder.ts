import type { OpContext } from '../api/handle.js';
import { TensorMethods } from '../api/methods.js';
import type { TensorValue } from '../attrs.js';
import type { DType, HostArray } from '../dtype.js';
import { invalidArgument, KilnError } from '../errors.js';
import type { HostTensor } from '../host-tensor.js';
import { type OpName, opDef } from '../ops/index.js';
import { assertValidShape, formatType, type Shape, type TensorType } from '../shape.js';
import {
  atNode,
  describeNode,
  type GraphData,
  type Initializer,
  type Node,
  parseAttrs,
  type Value,
  type ValueId,
} from './graph.js';
import { printGraph } from './print.js';

/** How a program tried to read a tensor's value: steering JS control flow with it, usually. */
export type ReadKind = 'item' | 'data' | 'toPrimitive';

/** A value in a symbolic graph: what the builder API passes around. */
export class SymbolicTensor extends TensorMethods {
  constructor(
    readonly graph: Graph,
    readonly id: ValueId,
  ) {
    super();
    if (!Number.isInteger(id) || graph.values[id] === undefined) {
      const has =
        graph.values.length === 0 ? 'it has none' : `its values are %0 to %${graph.values.length - 1}`;
      throw invalidArgument(`no value %${String(id)} in this graph (${has})`);
    }
  }
  get type(): TensorType {
    return this.graph.values[this.id]!.type;
  }
  get dtype(): DType {
    return this.type.dtype;
  }
  get shape(): Shape {
    return this.type.shape;
  }
  get context(): Graph {
    return this.graph;
  }
  get node(): Node {
    return this.graph.nodes[this.graph.values[this.id]!.node]!;
  }
  override toString(): string {
    return `%${this.id}: ${formatType(this.type)} from ${describeNode(this.node)}`;
  }
  /** A symbolic tensor has no value; a tracing graph may answer (see Graph.readValue). */
  item(): number {
    return this.graph.readValue(this, 'item').data[0]!;
  }
  data(): Promise<HostArray> {
    return Promise.resolve(this.graph.readValue(this, 'data').data);
  }
  dataSync(): HostArray {
    return this.graph.readValue(this, 'data').data;
  }
  [Symbol.toPrimitive](hint: string): number | string {
    if (hint === 'string') return this.toString();
    return Number(this.graph.readValue(this, 'toPrimitive').data[0]);
  }
}

/**
 * A graph under construction, in the TensorFlow 1.x style: declare placeholders, variables and
 * ops, then run it with a Session. Every op is checked as it is added (attributes, dtypes, shapes),
 * and an error names the op, the node and the shapes involved.
 */
export class Graph implements GraphData, OpContext<SymbolicTensor> {
  /** A user's symbolic graph sits above eager tensors; traces nest higher (see OpContext.level). */
  readonly level: number = 1;
  readonly nodes: Node[] = [];
  readonly values: Value[] = [];
  readonly initializers: Initializer[] = [];
  readonly outputs: Record<string, ValueId> = {};
  private readonly scopes: string[] = [];
  private readonly devices: string[] = [];
  private readonly names = new Set<string>();

  /** Wraps graph data (for instance a deserialized graph) so it can be extended and run. */
  static from(data: GraphData): Graph {
    // The shape of the data only; verifyGraph checks the rest before anything runs.
    const d = data as Partial<GraphData> | null;
    if (
      typeof d !== 'object' ||
      d === null ||
      !Array.isArray(d.nodes) ||
      !Array.isArray(d.values) ||
      !Array.isArray(d.initializers) ||
      typeof d.outputs !== 'object' ||
      d.outputs === null
    ) {
      throw invalidArgument(
        'Graph.from: expected graph data ({ nodes, values, initializers, outputs }), such as deserializeGraph returns',
      );
    }
    const g = new Graph();
    g.nodes.push(...data.nodes);
    g.values.push(...data.values);
    g.initializers.push(...data.initializers);
    Object.assign(g.outputs, data.outputs);
    for (const n of data.nodes) if (n.name) g.names.add(n.name);
    return g;
  }

  apply(
    op: OpName,
    inputs: readonly SymbolicTensor[],
    attrs: Readonly<Record<string, unknown>>,
    name?: string,
  ): SymbolicTensor[] {
    const def = opDef(op);
    const id = this.nodes.length;
    const nodeName = this.uniqueName(name ?? op);
    const where = { id, op, name: nodeName };
    for (const [i, t] of inputs.entries()) {
      if (t.graph !== this)
        throw atNode(where, invalidArgument(`input ${i} (${t}) belongs to another graph`));
    }
    const arity = def.arity;
    const [min, max] = typeof arity === 'number' ? [arity, arity] : [arity.min, arity.max ?? Infinity];
    if (inputs.length < min || inputs.length > max) {
      throw atNode(
        where,
        invalidArgument(`takes ${min === max ? min : `${min} to ${max}`} inputs, got ${inputs.length}`),
      );
    }
    let parsed: Record<string, unknown>;
    let types: TensorType[];
    try {
      parsed = parseAttrs(op, attrs, op);
      types = def.infer(
        inputs.map((t) => t.type),
        parsed,
      );
    } catch (e) {
      throw atNode(where, e);
    }
    const outputs = types.map((type, index) => {
      const value: Value = { id: this.values.length, type, node: id, index };
      this.values.push(value);
      return value.id;
    });
    const device = this.devices.at(-1);
    this.nodes.push({
      id,
      op,
      inputs: inputs.map((t) => t.id),
      attrs: parsed,
      outputs,
      name: nodeName,
      ...(device === undefined ? {} : { device }),
    });
    return outputs.map((v) => new SymbolicTensor(this, v));
  }

  /** A constant; the graph keeps a copy of its data, so the caller's array stays the caller's. */
  constant(value: TensorValue, name?: string): SymbolicTensor {
    const own =
      typeof value === 'object' && value !== null && ArrayBuffer.isView(value.data)
        ? { dtype: value.dtype, shape: value.shape, data: value.data.slice() }
        : value;
    return this.apply('constant', [], { value: own }, name)[0]!;
  }

  /** A value fed at run time. `null` dimensions are checked against the feed only when run. */
  placeholder(dtype: DType, shape: Shape, name: string): SymbolicTensor {
    checkName(name, 'placeholder');
    assertValidShape(shape, `placeholder '${name}'`, true);
    if (this.nodes.some((n) => n.op === 'placeholder' && n.attrs.name === name)) {
      throw invalidArgument(`a placeholder named '${name}' already exists`);
    }
    return this.apply('placeholder', [], { name, dtype, shape }, name)[0]!;
  }

  /**
   * A variable initialised from `initial` (computed in this graph, for instance by randomNormal),
   * named `localName` inside the current scope.
   * Sessions initialise variables on first use; `Session.initialize()` does it eagerly.
   */
  variable(localName: string, initial: SymbolicTensor): SymbolicTensor {
    checkName(localName, 'variable');
    // Variables are named with their scope ('dense1/w'), so layers can each have a 'w'.
    const name = this.scopedName(localName);
    if (this.nodes.some((n) => n.op === 'variable' && n.attrs.name === name)) {
      throw invalidArgument(`a variable named '${name}' already exists`);
    }
    if (!initial.type.shape.every((d) => d !== null)) {
      throw invalidArgument(
        `variable '${name}': initial value ${formatType(initial.type)} must have a known shape`,
      );
    }
    const v = this.apply('variable', [], { name, dtype: initial.dtype, shape: initial.shape }, localName)[0]!;
    this.initializers.push({ variable: name, value: initial.id });
    return v;
  }

  /** Stores `value` into `variable` when run; yields the stored value. */
  assign(variable: SymbolicTensor, value: SymbolicTensor, name?: string): SymbolicTensor {
    if (variable.node.op !== 'variable') throw invalidArgument(`assign: ${variable} is not a variable`);
    const { name: varName, dtype, shape } = variable.node.attrs;
    return this.apply(
      'assign',
      [value],
      { variable: varName, dtype, shape },
      name ?? `${String(varName)}/assign`,
    )[0]!;
  }

  /** Names an output, so a program that loads the serialized graph can fetch it by that name. */
  output(name: string, tensor: SymbolicTensor): SymbolicTensor {
    checkName(name, 'output');
    if (!(tensor instanceof SymbolicTensor))
      throw invalidArgument(`output '${name}': expected a tensor of this graph`);
    if (tensor.graph !== this) throw invalidArgument(`output '${name}': ${tensor} belongs to another graph`);
    this.outputs[name] = tensor.id;
    return tensor;
  }

  /** Finds a tensor by output name, or by node name (its first output). */
  tensor(name: string): SymbolicTensor {
    checkName(name, 'tensor lookup');
    const out = this.outputs[name];
    if (out !== undefined) return new SymbolicTensor(this, out);
    const node = this.nodes.find((n) => n.name === name);
    if (!node || node.outputs.length === 0) {
      const known = Object.keys(this.outputs);
      throw new KilnError(
        'invalid-argument',
        `no output or node named '${name}'${known.length ? `; named outputs: ${known.join(', ')}` : ''}`,
      );
    }
    return new SymbolicTensor(this, node.outputs[0]!);
  }

  /** Runs `build` with every node name prefixed by `name/`. */
  scope<R>(name: string, build: () => R): R {
    checkName(name, 'scope');
    this.scopes.push(name);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  /**
   * Runs `build` with every node it adds asking for `device` ('worker:1/cpu'), as TensorFlow's
   * `tf.device` scope does. A hint: the placer honours it where that device can run the op and
   * warns, naming the nodes, where it cannot. The innermost scope wins.
   */
  onDevice<R>(device: string, build: () => R): R {
    if (typeof device !== 'string' || device.length === 0)
      throw invalidArgument(`onDevice: the device must be a non-empty name, got ${JSON.stringify(device)}`);
    this.devices.push(device);
    try {
      return build();
    } finally {
      this.devices.pop();
    }
  }

  /** The device scope nodes added now ask for, if any. */
  get currentDevice(): string | undefined {
    return this.devices.at(-1);
  }

  toString(): string {
    return printGraph(this);
  }

  /**
   * Asked when a program reads a symbolic tensor's value (`t.item()`, `Number(t)`, `t > 0`). A
   * plain graph has no values until a Session runs it; a tracing graph overrides this.
   */
  readValue(tensor: SymbolicTensor, how: ReadKind): HostTensor {
    throw new KilnError(
      'invalid-argument',
      `cannot read the value of symbolic tensor ${tensor} (${how}): it has none until a Session runs the graph`,
    );
  }

  /** `localName` as a variable made now is named: inside the current scopes ('dense1/w'). */
  scopedName(localName: string): string {
    return [...this.scopes, localName].join('/');
  }

  private uniqueName(base: string): string {
    const full = [...this.scopes, base].join('/');
    let name = full;
    for (let i = 1; this.names.has(name); i++) name = `${full}_${i}`;
    this.names.add(name);
    return name;
  }
}

/** Names are strings: anything else is refused before it reaches a message or a map key. */
function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 4096) {
    const shown = typeof name === 'string' ? `a string of ${name.length} characters` : typeof name;
    throw invalidArgument(
      `${what}: a name must be a non-empty string of at most 4096 characters, got ${shown}`,
    );
  }
}
