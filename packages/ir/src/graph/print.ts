import type { TensorValue } from '../attrs.js';
import { formatShape, formatType } from '../shape.js';
import type { GraphData, Node } from './graph.js';

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

export function formatNode(graph: GraphData, node: Node): string {
  const outs = node.outputs.map((v) => `%${v}`).join(', ');
  const ins = node.inputs.map((v) => `%${v}`).join(', ');
  const attrs = Object.entries(node.attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${formatAttr(v)}`)
    .join(', ');
  const types = node.outputs.map((v) => formatType(graph.values[v]!.type)).join(', ');
  const lhs = outs ? `${outs} = ` : '';
  const name = node.name ? `  # ${node.name}` : '';
  return `${lhs}${node.op}(${ins})${attrs ? ` {${attrs}}` : ''} : ${types}${name}`;
}

/**
 * One line per node, in the spirit of a Jaxpr or MLIR listing:
 *   %3 = matmul(%0, %1) {transposeA=false, transposeB=false} : f32[?,256]  # dense1/matmul
 */
export function printGraph(graph: GraphData): string {
  const lines = graph.nodes.map((n) => `  ${formatNode(graph, n)}`);
  for (const init of graph.initializers)
    lines.push(`  init ${JSON.stringify(init.variable)} <- %${init.value}`);
  for (const [name, v] of Object.entries(graph.outputs))
    lines.push(`  output ${JSON.stringify(name)} = %${v}`);
  return `graph {\n${lines.join('\n')}\n}`;
}
