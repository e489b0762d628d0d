import { setRegionParser } from '../attrs.js';
import { isDType } from '../dtype.js';
import { invalidArgument, KilnError } from '../errors.js';
import { opDef } from '../ops/index.js';
import type { ConcreteType, Cost } from '../ops/op-def.js';
import type { RefTensor } from '../ref-tensor.js';
import { type Dim, formatType, isConcrete, shapeMatches, type TensorType } from '../shape.js';
import { describeNode, type GraphData, type Node, type Value, type ValueId } from './graph.js';
import { interpret } from './interpret.js';
import { requiredNodes } from './prune.js';
import { verifyRegion } from './verify.js';

/**
 * A region: the body of a structured control-flow op (a branch of `cond`, the condition or body of
 * `while`). It is self-contained, like a function: its only sources are its `inputs` (the outputs of
 * its placeholder nodes, named arg0, arg1, ... in order) and constants, so it never reads a value of
 * the graph around it implicitly; the op passes everything it needs as operands. Its types may keep
 * unknown (`null`) dimensions. It has no variables, assigns, initializers or named outputs.
 */
export interface Region extends GraphData {
  readonly inputs: readonly ValueId[];
  readonly results: readonly ValueId[];
}

/** How deeply regions may nest (a cond inside a while body is depth 2). Bounds every recursion. */
export const MAX_REGION_DEPTH = 16;

export function regionInputTypes(region: Region): TensorType[] {
  return region.inputs.map((v) => region.values[v]!.type);
}

export function regionResultTypes(region: Region): TensorType[] {
  return region.results.map((v) => region.values[v]!.type);
}

/** Whether a value looks like a region (for printers and encoders; `attr.region` validates). */
export function isRegion(value: unknown): value is Region {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<Region>;
  return (
    Array.isArray(r.nodes) && Array.isArray(r.values) && Array.isArray(r.inputs) && Array.isArray(r.results)
  );
}

/**
 * Turns a graph built for a region (for instance a child `Graph` on which a branch function ran)
 * into a Region: only the nodes the results need are kept, plus the input placeholders, renumbered
 * from 0 with the inputs first; input placeholders are renamed arg0, arg1, ... in input order.
 */
export function regionFromGraph(
  graph: GraphData,
  inputs: readonly ValueId[],
  results: readonly ValueId[],
): Region {
  const inputIndex = new Map<ValueId, number>();
  inputs.forEach((v, i) => {
    const value = graph.values[v];
    if (!value || graph.nodes[value.node]?.op !== 'placeholder')
      throw invalidArgument(`region input ${i} (%${v}) is not the output of a placeholder`);
    if (inputIndex.has(v)) throw invalidArgument(`region input ${i} (%${v}) is listed twice`);
    inputIndex.set(v, i);
  });
  results.forEach((v, i) => {
    if (!graph.values[v]) throw invalidArgument(`region result ${i} (%${v}) does not exist`);
  });
  const needed = new Set(requiredNodes(graph, results));
  for (const v of inputs) needed.add(graph.values[v]!.node);

  const nodes: Node[] = [];
  const values: Value[] = [];
  const valueMap = new Map<ValueId, ValueId>();
  // The input placeholders come first, in input order, so that a region's arguments are %0, %1, ...
  const inputNodes = inputs.map((v) => graph.values[v]!.node);
  const isInput = new Set(inputNodes);
  const rest = [...needed].filter((id) => !isInput.has(id)).sort((a, b) => a - b);
  for (const id of [...inputNodes, ...rest]) {
    const node = graph.nodes[id]!;
    if (node.op === 'variable' || node.op === 'assign')
      throw invalidArgument(`${describeNode(node)}: a region cannot hold variables or assigns`);
    const argIndex = node.op === 'placeholder' ? inputIndex.get(node.outputs[0]!) : undefined;
    if (node.op === 'placeholder' && argIndex === undefined) {
      throw invalidArgument(
        `${describeNode(node)}: the region's results use placeholder '${String(node.attrs.name)}', which is not one of its inputs`,
      );
    }
    const newId = nodes.length;
    const outputs = node.outputs.map((v, index) => {
      const id = values.length;
      values.push({ id, type: graph.values[v]!.type, node: newId, index });
      valueMap.set(v, id);
      return id;
    });
    const ins = node.inputs.map((v) => valueMap.get(v)!);
    if (argIndex !== undefined) {
      // Input placeholders are named by position; they carry no node name, so they cannot clash
      // with the names of the region's other nodes.
      nodes.push({
        id: newId,
        op: node.op,
        inputs: ins,
        attrs: { ...node.attrs, name: `arg${argIndex}` },
        outputs,
      });
    } else {
      nodes.push({
        id: newId,
        op: node.op,
        inputs: ins,
        attrs: node.attrs,
        outputs,
        ...(node.name === undefined ? {} : { name: node.name }),
      });
    }
  }
  return {
    nodes,
    values,
    initializers: [],
    outputs: {},
    inputs: inputs.map((v) => valueMap.get(v)!),
    results: results.map((v) => valueMap.get(v)!),
  };
}

/**
 * Runs a region with the float64 reference implementations: the control-flow ops' reference. Each
 * argument must have the dtype of its input and fit its (possibly partial) shape.
 */
export function interpretRegion(region: Region, args: readonly RefTensor[], where: string): RefTensor[] {
  if (args.length !== region.inputs.length) {
    throw new KilnError('runtime', `${where}: takes ${region.inputs.length} values, got ${args.length}`);
  }
  const bound = new Map<ValueId, RefTensor>();
  region.inputs.forEach((v, i) => {
    const want = region.values[v]!.type;
    const got = args[i]!;
    if (got.dtype !== want.dtype || !shapeMatches(got.shape, want.shape)) {
      throw new KilnError(
        'runtime',
        `${where}: input ${i} is ${formatType(got)}, the region expects ${formatType(want)}`,
      );
    }
    bound.set(v, got);
  });
  const env = interpret(
    region,
    region.nodes.map((n) => n.id),
    bound,
  );
  return region.results.map((v) => env.get(v)!);
}

/**
 * The summed cost of a region's nodes whose types are concrete (nodes with unknown dimensions are
 * left out, so this is an estimate from below).
 */
export function regionCost(region: Region): Cost {
  let flops = 0;
  let bytes = 0;
  for (const node of region.nodes) {
    if (node.op === 'placeholder') continue;
    const ins = node.inputs.map((v) => region.values[v]!.type);
    const outs = node.outputs.map((v) => region.values[v]!.type);
    if (![...ins, ...outs].every((t) => isConcrete(t.shape))) continue;
    const cost = opDef(node.op).cost(ins as ConcreteType[], outs as ConcreteType[], node.attrs);
    flops += cost.flops;
    bytes += cost.bytes;
  }
  return { flops, bytes };
}

// ---------------------------------------------------------------- attr.region

const isId = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

function bad(where: string, what: string): never {
  throw invalidArgument(`${where}: ${what}`);
}

function idList(x: unknown, where: string): ValueId[] {
  if (!Array.isArray(x) || !x.every(isId)) bad(where, 'expected a list of value ids');
  return [...(x as number[])];
}

function nodeShape(x: unknown, where: string): Node {
  if (!isPlainObject(x)) bad(where, 'expected a node');
  const n = x as Record<string, unknown>;
  if (!isId(n.id)) bad(where, 'expected a node id');
  if (typeof n.op !== 'string') bad(where, 'expected an op name');
  if (!isPlainObject(n.attrs)) bad(where, 'expected an attribute map');
  if (n.name !== undefined && typeof n.name !== 'string') bad(where, 'expected a string name');
  const node = {
    id: n.id as number,
    op: n.op as Node['op'],
    inputs: idList(n.inputs, `${where} inputs`),
    attrs: n.attrs as Record<string, unknown>,
    outputs: idList(n.outputs, `${where} outputs`),
  };
  return n.name === undefined ? node : { ...node, name: n.name as string };
}

function valueShape(x: unknown, where: string): Value {
  if (!isPlainObject(x)) bad(where, 'expected a value');
  const v = x as Record<string, unknown>;
  if (!isId(v.id) || !isId(v.node) || !isId(v.index)) bad(where, 'expected numeric id, node and index');
  const type = v.type as Partial<TensorType> | null;
  if (!isPlainObject(type) || !isDType(type.dtype) || !Array.isArray(type.shape))
    bad(where, 'expected a type');
  const shape = type!.shape as unknown[];
  if (shape.length > 16 || !shape.every((d) => d === null || isId(d))) bad(where, 'expected a shape');
  return {
    id: v.id as number,
    node: v.node as number,
    index: v.index as number,
    type: { dtype: type!.dtype!, shape: shape as Dim[] },
  };
}

/** The structure of a region attribute, copied, before it is verified. */
function regionShape(x: unknown, where: string): Region {
  if (!isPlainObject(x)) bad(where, 'expected a region');
  const r = x as Record<string, unknown>;
  if (!Array.isArray(r.nodes) || !Array.isArray(r.values)) bad(where, 'expected a region (nodes and values)');
  if (r.initializers !== undefined && !(Array.isArray(r.initializers) && r.initializers.length === 0))
    bad(where, 'a region has no initializers');
  if (r.outputs !== undefined && !(isPlainObject(r.outputs) && Object.keys(r.outputs).length === 0))
    bad(where, 'a region has no named outputs');
  return {
    nodes: (r.nodes as unknown[]).map((n, i) => nodeShape(n, `${where}: node ${i}`)),
    values: (r.values as unknown[]).map((v, i) => valueShape(v, `${where}: value ${i}`)),
    initializers: [],
    outputs: {},
    inputs: idList(r.inputs, `${where}: inputs`),
    results: idList(r.results, `${where}: results`),
  };
}

// Parsing a region verifies it, which parses the attributes of its nodes, nested regions included:
// the recursion goes through the op table, so its depth is counted here.
let depth = 0;

function parseRegion(value: unknown, where: string): Region {
  if (depth >= MAX_REGION_DEPTH) bad(where, `regions nested more than ${MAX_REGION_DEPTH} deep`);
  depth++;
  try {
    const region = regionShape(value, where);
    try {
      verifyRegion(region);
    } catch (e) {
      if (e instanceof KilnError) throw new KilnError(e.code, `${where}: ${e.message}`, { cause: e });
      throw e;
    }
    return region;
  } finally {
    depth--;
  }
}

setRegionParser(parseRegion);
