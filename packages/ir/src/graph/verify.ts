import { clip, KilnError } from '../errors.js';
import { isOpName, opDef } from '../ops/index.js';
import { formatType, shapesEqual, type TensorType } from '../shape.js';
import { describeNode, type GraphData, type Node, parseAttrs, type ValueId } from './graph.js';
import { formatNode } from './print.js';
import type { Region } from './region.js';

const fail = (message: string): never => {
  throw new KilnError('verify', message);
};

/**
 * The node as the printer shows it, for context in messages; '(unprintable)' if the node is too
 * broken. Cut short: the line prints attribute values in full, and in a graph read from bytes one
 * can be a string of megabytes.
 */
function printedLine(graph: GraphData, node: Node): string {
  try {
    return clip(formatNode(graph, node), 200);
  } catch {
    return '(unprintable)';
  }
}

const sameType = (a: TensorType, b: TensorType) => a.dtype === b.dtype && shapesEqual(a.shape, b.shape);

/**
 * Checks every invariant of a graph and throws a KilnError('verify') naming the node that broke
 * one. Run on everything that did not come from the builder (deserialized bytes, pass outputs):
 * after it, kernels may trust attribute kinds, arities and types.
 */
export function verifyGraph(graph: GraphData): void {
  const { nodes, values } = graph;
  const defined = new Uint8Array(values.length);
  const names = new Map<string, string>();
  const variables = new Map<string, TensorType>();

  values.forEach((v, i) => {
    if (v.id !== i) fail(`value %${i} has id ${v.id}`);
    const producer = nodes[v.node];
    if (!producer || producer.outputs[v.index] !== i)
      fail(`value %${i} claims to be output ${v.index} of node #${v.node}, which does not produce it`);
  });

  nodes.forEach((node, i) => {
    if (node.id !== i) fail(`node at position ${i} has id ${node.id}`);
    if (!isOpName(node.op)) fail(`node #${i}: unknown op '${String(node.op)}'`);
    const where = describeNode(node);
    const def = opDef(node.op);
    const [min, max] =
      typeof def.arity === 'number' ? [def.arity, def.arity] : [def.arity.min, def.arity.max ?? Infinity];
    if (node.inputs.length < min || node.inputs.length > max)
      fail(`${where}: has ${node.inputs.length} inputs`);
    for (const [k, v] of node.inputs.entries()) {
      if (!Number.isInteger(v) || v < 0 || v >= values.length || !defined[v]) {
        fail(`${where}: input ${k} refers to %${v}, which is not defined before this node`);
      }
    }
    let attrs: Record<string, unknown>;
    let types: TensorType[];
    try {
      attrs = parseAttrs(node.op, node.attrs, node.op);
      types = def.infer(
        node.inputs.map((v) => values[v]!.type),
        attrs,
      );
    } catch (e) {
      // Anything but a KilnError is a bug in an op definition: let it surface, not pass as bad input.
      if (!(e instanceof KilnError)) throw e;
      throw new KilnError('verify', `${where}: ${e.message}\n    in: ${printedLine(graph, node)}`, {
        cause: e,
      });
    }
    if (types.length !== node.outputs.length)
      fail(`${where}: produces ${node.outputs.length} outputs, its op ${types.length}`);
    node.outputs.forEach((v, k) => {
      const value = values[v];
      if (!value || value.node !== i || value.index !== k || defined[v])
        fail(`${where}: output ${k} (%${v}) is not its own`);
      if (!sameType(value!.type, types[k]!)) {
        fail(
          `${where}: output %${v} is recorded as ${formatType(value!.type)} but its inputs give ${formatType(types[k]!)}`,
        );
      }
      defined[v] = 1;
    });
    if (node.name !== undefined) {
      if (typeof node.name !== 'string') fail(`node #${i}: name is not a string`);
      if (names.has(node.name)) fail(`${where}: name '${node.name}' is also used by ${names.get(node.name)}`);
      names.set(node.name, where);
    }
    if (node.op === 'variable') {
      const name = attrs.name as string;
      if (variables.has(name)) fail(`${where}: a second variable named '${name}'`);
      variables.set(name, types[0]!);
    }
    if (node.op === 'assign') {
      const target = variables.get(attrs.variable as string);
      if (!target)
        fail(`${where}: assigns to '${String(attrs.variable)}', which no earlier variable node declares`);
      if (!sameType(target!, types[0]!))
        fail(`${where}: assigns ${formatType(types[0]!)} to a ${formatType(target!)} variable`);
    }
  });

  const placeholders = new Set<string>();
  for (const n of nodes) {
    if (n.op !== 'placeholder') continue;
    if (placeholders.has(n.attrs.name as string))
      fail(`${describeNode(n)}: a second placeholder named '${String(n.attrs.name)}'`);
    placeholders.add(n.attrs.name as string);
  }

  const initialized = new Set<string>();
  for (const init of graph.initializers) {
    const type = variables.get(init.variable);
    if (!type) fail(`initializer for '${init.variable}': no such variable`);
    if (initialized.has(init.variable)) fail(`variable '${init.variable}' has two initializers`);
    initialized.add(init.variable);
    const value = values[init.value];
    if (!value) fail(`initializer for '${init.variable}' refers to %${init.value}, which does not exist`);
    if (!sameType(value!.type, type!)) {
      fail(
        `initializer for '${init.variable}' is ${formatType(value!.type)}, the variable ${formatType(type!)}`,
      );
    }
  }
  for (const name of variables.keys())
    if (!initialized.has(name)) fail(`variable '${name}' has no initializer`);

  for (const [name, v] of Object.entries(graph.outputs)) {
    if (!Number.isInteger(v) || v < 0 || v >= values.length)
      fail(`output '${name}' refers to %${v}, which does not exist`);
  }
}

/**
 * Checks a region (the body of a cond or while; see region.ts): every rule of verifyGraph, and
 * that it is self-contained: its inputs are distinct placeholder outputs, every placeholder is an
 * input, its results exist, and it holds no variables, assigns, initializers or named outputs.
 * Nested regions are verified when their attributes are parsed, so errors name the path: the outer
 * node, the attribute, then the inner node.
 */
export function verifyRegion(region: Region): void {
  if (region.initializers.length > 0) fail('a region has no initializers');
  if (Object.keys(region.outputs).length > 0) fail('a region has no named outputs');
  for (const node of region.nodes) {
    if (node.op === 'variable' || node.op === 'assign')
      fail(`${describeNode(node)}: variables and assigns cannot appear inside a region`);
  }
  verifyGraph(region);
  const { nodes, values } = region;
  const inputs = new Set<ValueId>();
  region.inputs.forEach((v, i) => {
    const value = values[v];
    if (!value) fail(`region input ${i} refers to %${v}, which does not exist`);
    const producer = nodes[value!.node]!;
    if (producer.op !== 'placeholder')
      fail(`region input ${i} (%${v}) is produced by ${describeNode(producer)}, not by a placeholder`);
    if (inputs.has(v)) fail(`region input ${i} (%${v}) is listed twice`);
    inputs.add(v);
  });
  for (const node of nodes) {
    if (node.op === 'placeholder' && !inputs.has(node.outputs[0]!))
      fail(
        `${describeNode(node)}: a placeholder that is not a region input (a region reads only its inputs)`,
      );
  }
  region.results.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= values.length)
      fail(`region result ${i} refers to %${v}, which does not exist`);
  });
}
