import type { TensorValue } from '../attrs.js';
import type { GraphData, Node, ValueId } from '../graph/graph.js';
import { isRegion } from '../graph/region.js';
import { EXECUTOR_OPS, type OpName, opDef } from '../ops/index.js';
import { crc32 } from '../serialize/crc32.js';
import { type GraphRewrite, graphRoots, rewriteRegions } from './regions.js';
import { GraphWriter, type PassResult } from './writer.js';

/** What common-subexpression elimination did. */
export interface CseResult extends PassResult {
  /** Nodes dropped because an identical earlier node computes the same values. */
  readonly merged: number;
}

/** Ops whose inputs may be swapped without changing a bit of the result (IEEE + and * commute). */
const COMMUTATIVE: ReadonlySet<OpName> = new Set<OpName>([
  'add',
  'mul',
  'maximum',
  'minimum',
  'equal',
  'notEqual',
  'logicalAnd',
  'logicalOr',
  'logicalXor',
]);

/**
 * Common-subexpression elimination by hash-consing: a node with the same op, the same (already
 * merged) inputs and the same attributes as an earlier one is dropped and its values mapped to the
 * earlier node's. Constants are equal when dtype, shape and bytes are. Random ops are pure
 * functions of their attributes (seed, counter, shape), so identical draws merge too. Placeholders,
 * variables, assigns, stateful ops and control flow are never merged; the regions of control flow
 * are cleaned inside, each on its own.
 */
export function eliminateCommonSubexpressions(graph: GraphData): CseResult {
  const stats = { merged: 0 };
  const result = run(graph, graphRoots(graph), stats);
  return { ...result, merged: stats.merged };
}

function run(graph: GraphData, _roots: readonly ValueId[], stats: { merged: number }): PassResult {
  const w = new GraphWriter();
  const map = new Map<ValueId, ValueId>();
  const inner: GraphRewrite = (g, roots) => run(g, roots, stats);
  const seen = new Map<string, Node[]>();
  for (const node of graph.nodes) {
    const ins = node.inputs.map((v) => map.get(v)!);
    const attrs = rewriteRegions(node, inner);
    const key = mergeable(node.op) ? keyOf(node, ins) : null;
    const twin = key === null ? undefined : seen.get(key)?.find((n) => sameNode(n, node));
    if (twin) {
      stats.merged++;
      node.outputs.forEach((v, k) => map.set(v, twin.outputs[k]!));
      continue;
    }
    const outs = w.copy(node, ins, attrs);
    node.outputs.forEach((v, k) => map.set(v, outs[k]!));
    if (key !== null) {
      const copy = w.nodes[w.nodes.length - 1]!;
      const bucket = seen.get(key);
      if (bucket) bucket.push(copy);
      else seen.set(key, [copy]);
    }
  }
  return { graph: w.graph(graph, map), valueMap: map };
}

function mergeable(op: OpName): boolean {
  return !EXECUTOR_OPS.has(op) && !opDef(op).stateful;
}

/** A key equal nodes share; constants' keys hash their bytes, so a bucket may need sameNode. */
function keyOf(node: Node, ins: readonly ValueId[]): string {
  if (node.op === 'constant') {
    const t = node.attrs.value as TensorValue;
    return `constant|${t.dtype}|${t.shape.join(',')}|${crc32(bytesOf(t))}|${node.device ?? ''}`;
  }
  const order = COMMUTATIVE.has(node.op) ? [...ins].sort((a, b) => a - b) : ins;
  // Twins on different devices stay apart: each device computes its own copy (no transfer).
  return `${node.op}|${order.join(',')}|${canonical(node.attrs)}|${node.device ?? ''}`;
}

/** For constants, the bytes themselves; anything else with the same key is the same node. */
function sameNode(earlier: Node, node: Node): boolean {
  if (node.op !== 'constant') return true;
  const a = bytesOf(earlier.attrs.value as TensorValue);
  const b = bytesOf(node.attrs.value as TensorValue);
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const bytesOf = (t: TensorValue) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/**
 * Attributes as a string equal attributes share: keys sorted, and the numbers JSON would blur
 * (-0, NaN, infinities) spelled out.
 */
export function canonical(value: unknown): string {
  if (typeof value === 'number') {
    if (Object.is(value, -0)) return '-0';
    return Number.isFinite(value) ? String(value) : `"${String(value)}"`;
  }
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (ArrayBuffer.isView(value)) {
    const v = value as unknown as ArrayLike<number>;
    return `${value.constructor.name}[${Array.from(v, canonical).join(',')}]`;
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isRegion(value)) {
    // Control flow is never merged; a region attribute on another op is compared by content.
    return `region${canonical({ nodes: value.nodes, values: value.values, inputs: value.inputs, results: value.results })}`;
  }
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}
