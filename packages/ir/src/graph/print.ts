import type { TensorValue } from '../attrs.js';
import { formatShape, formatType } from '../shape.js';
import type { GraphData, Node } from './graph.js';
import type { Region } from './region.js';

// A structural test of its own (rather than region.ts's isRegion) keeps the printer free of the
// modules the verifier and the ops depend on.
const isRegionAttr = (value: unknown): value is Region =>
  typeof value === 'object' &&
  value !== null &&
  Array.isArray((value as Region).nodes) &&
  Array.isArray((value as Region).values) &&
  Array.isArray((value as Region).inputs) &&
  Array.isArray((value as Region).results);

function formatAttr(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    return `[${value.map(formatAttr).join(',')}]`;
  }
  if (typeof value === 'object' && 'data' in (value as object)) {
    const t = value as TensorValue;
    const shown = Array.from(t.data.subarray(0, 6)).map((x) => Number(x.toPrecision(4)));
    return `${t.dtype}${formatShape(t.shape)}<${shown.join(',')}${t.data.length > 6 ? ',…' : ''}>`;
  }
  return String(value);
}

/**
 * One node on one line. Region attributes (the bodies of cond and while) are left out here;
 * printGraph prints them as nested blocks under the node.
 */
export function formatNode(graph: GraphData, node: Node): string {
  const outs = node.outputs.map((v) => `%${v}`).join(', ');
  const ins = node.inputs.map((v) => `%${v}`).join(', ');
  const attrs = Object.entries(node.attrs)
    .filter(([, v]) => v !== undefined && !isRegionAttr(v))
    .map(([k, v]) => `${k}=${formatAttr(v)}`)
    .join(', ');
  const types = node.outputs.map((v) => formatType(graph.values[v]!.type)).join(', ');
  const lhs = outs ? `${outs} = ` : '';
  const device = node.device ? ` @${node.device}` : '';
  const name = node.name || device ? `  #${node.name ? ` ${node.name}` : ''}${device}` : '';
  return `${lhs}${node.op}(${ins})${attrs ? ` {${attrs}}` : ''} : ${types}${name}`;
}

/**
 * A node and, indented under it, each region it holds:
 *   %5, %6 = while(%3, %4) {maxIterations=-1} : f32[2], i32[]  # loop
 *     cond(%0: f32[2], %1: i32[]) {
 *       ...
 *       return %7
 *     }
 * Value numbers inside a region are the region's own; its input placeholders appear only in the
 * block's header.
 */
function nodeLines(graph: GraphData, node: Node, indent: string, out: string[]): void {
  out.push(`${indent}${formatNode(graph, node)}`);
  for (const [key, value] of Object.entries(node.attrs)) {
    if (isRegionAttr(value)) regionLines(key, value, `${indent}  `, out);
  }
}

function regionLines(label: string, region: Region, indent: string, out: string[]): void {
  const inputs = new Set(region.inputs);
  const params = region.inputs.map((v) => `%${v}: ${formatType(region.values[v]!.type)}`).join(', ');
  out.push(`${indent}${label}(${params}) {`);
  for (const node of region.nodes) {
    if (node.op === 'placeholder' && inputs.has(node.outputs[0]!)) continue;
    nodeLines(region, node, `${indent}  `, out);
  }
  out.push(`${indent}  return ${region.results.map((v) => `%${v}`).join(', ')}`);
  out.push(`${indent}}`);
}

/**
 * One line per node, in the spirit of a Jaxpr or MLIR listing:
 *   %3 = matmul(%0, %1) {transposeA=false, transposeB=false} : f32[?,256]  # dense1/matmul
 * with the regions of control-flow nodes nested and indented under them.
 */
export function printGraph(graph: GraphData): string {
  const lines: string[] = [];
  for (const n of graph.nodes) nodeLines(graph, n, '  ', lines);
  for (const init of graph.initializers)
    lines.push(`  init ${JSON.stringify(init.variable)} <- %${init.value}`);
  for (const [name, v] of Object.entries(graph.outputs))
    lines.push(`  output ${JSON.stringify(name)} = %${v}`);
  return `graph {\n${lines.join('\n')}\n}`;
}

/** A region on its own, as printGraph shows it nested under its node. */
export function printRegion(region: Region, label = 'region'): string {
  const lines: string[] = [];
  regionLines(label, region, '', lines);
  return lines.join('\n');
}
