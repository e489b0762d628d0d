import type { TensorValue } from '../attrs.js';
import type { GraphData, Node, ValueId } from '../graph/graph.js';
import { type OpName, opDef } from '../ops/index.js';
import { type Shape, shapesEqual, type TensorType } from '../shape.js';
import { type GraphRewrite, graphRoots, rewriteRegions } from './regions.js';
import { GraphWriter, type PassResult } from './writer.js';

/** What simplification did. */
export interface SimplifyResult extends PassResult {
  /** Nodes rewritten (replaced by a value that already existed, or by one cheaper node). */
  readonly rewrites: number;
}

/**
 * Algebraic simplification: rewrites that keep every type and every value. The identities
 * `x*1, 1*x, x/1, x+0, 0+x, x-0, x**1` (when the constant is filled with that number, has x's
 * dtype and does not broadcast x to a larger shape), `neg(neg(x))`, `logicalNot(logicalNot(x))`,
 * transposes of transposes (perms composed; the identity perm is dropped), reshapes of reshapes
 * (one reshape), and reshape, cast and broadcastTo to the type x already has. `x*0` is never
 * rewritten (NaN and infinities times zero are NaN). One caveat, as in most compilers: `x+0` keeps
 * x where x is -0, while IEEE addition would give +0. Regions are simplified inside.
 */
export function simplify(graph: GraphData): SimplifyResult {
  const stats = { rewrites: 0 };
  const result = run(graph, graphRoots(graph), stats);
  return { ...result, rewrites: stats.rewrites };
}

function run(graph: GraphData, _roots: readonly ValueId[], stats: { rewrites: number }): PassResult {
  const w = new GraphWriter();
  const map = new Map<ValueId, ValueId>();
  const inner: GraphRewrite = (g, roots) => run(g, roots, stats);
  for (const node of graph.nodes) {
    const ins = node.inputs.map((v) => map.get(v)!);
    const attrs = rewriteRegions(node, inner);
    const replaced =
      node.outputs.length === 1 ? rewrite(w, node, ins, graph.values[node.outputs[0]!]!.type) : null;
    if (replaced !== null) {
      stats.rewrites++;
      map.set(node.outputs[0]!, replaced);
      continue;
    }
    const outs = w.copy(node, ins, attrs);
    node.outputs.forEach((v, k) => map.set(v, outs[k]!));
  }
  return { graph: w.graph(graph, map), valueMap: map };
}

const sameType = (a: TensorType, b: TensorType) => a.dtype === b.dtype && shapesEqual(a.shape, b.shape);

/** The producer of a value in the graph being written. */
function producer(w: GraphWriter, v: ValueId): Node {
  return w.nodes[w.values[v]!.node]!;
}

/** Whether `v` is a constant every element of which is `k` (0 matches -0 too). */
function isFilled(w: GraphWriter, v: ValueId, k: number): boolean {
  const node = producer(w, v);
  if (node.op !== 'constant') return false;
  const { data } = node.attrs.value as TensorValue;
  for (let i = 0; i < data.length; i++) if (data[i] !== k) return false;
  return true;
}

/** Whether broadcasting `small` against `x` leaves x's shape as it is (known dims only). */
function fitsInside(small: Shape, x: Shape): boolean {
  if (small.length > x.length) return false;
  const offset = x.length - small.length;
  return small.every((d, i) => d === 1 || (d !== null && d === x[offset + i]));
}

/** `x op c` (or `c op x` when `either`) with c filled with `k`: the x it reduces to, if any. */
function identityOperand(
  w: GraphWriter,
  ins: readonly ValueId[],
  k: number,
  either: boolean,
): ValueId | null {
  const type = (v: ValueId) => w.values[v]!.type;
  const [a, b] = ins as [ValueId, ValueId];
  const ok = (x: ValueId, c: ValueId) =>
    type(x).dtype === type(c).dtype && fitsInside(type(c).shape, type(x).shape) && isFilled(w, c, k);
  if (ok(a, b)) return a;
  if (either && ok(b, a)) return b;
  return null;
}

/** Output types of `op` on `ins`, or null if it does not infer. */
function tryInfer(w: GraphWriter, op: OpName, ins: readonly ValueId[], attrs: Record<string, unknown>) {
  try {
    return opDef(op).infer(
      ins.map((v) => w.values[v]!.type),
      attrs,
    );
  } catch {
    return null;
  }
}

function resolvePerm(perm: readonly number[] | null, rank: number): number[] {
  return perm ? [...perm] : Array.from({ length: rank }, (_, i) => rank - 1 - i);
}

/** The value a node reduces to (new or existing), or null to copy it. Its type must stay `want`. */
function rewrite(w: GraphWriter, node: Node, ins: readonly ValueId[], want: TensorType): ValueId | null {
  const keep = (v: ValueId | null): ValueId | null =>
    v !== null && sameType(w.values[v]!.type, want) ? v : null;
  const x = ins[0]!;
  const inner = ins.length > 0 ? producer(w, x) : undefined;
  switch (node.op) {
    case 'mul':
      return keep(identityOperand(w, ins, 1, true));
    case 'add':
      return keep(identityOperand(w, ins, 0, true));
    case 'sub':
      return keep(identityOperand(w, ins, 0, false));
    case 'div':
    case 'pow':
      return keep(identityOperand(w, ins, 1, false));
    case 'neg':
    case 'logicalNot':
      return inner?.op === node.op ? keep(inner.inputs[0]!) : null;
    case 'cast':
      return keep(x);
    case 'broadcastTo':
      if (sameType(w.values[x]!.type, want)) return x;
      return inner?.op === 'broadcastTo' ? emit(w, node, inner.inputs[0]!, node.attrs, want) : null;
    case 'reshape': {
      const shape = w.values[x]!.type.shape;
      if (shape.every((d) => d !== null) && sameType(w.values[x]!.type, want)) return x;
      if (inner?.op !== 'reshape') return null;
      const source = inner.inputs[0]!;
      const t = w.values[source]!.type;
      if (t.shape.every((d) => d !== null) && sameType(t, want)) return source;
      return emit(w, node, source, node.attrs, want);
    }
    case 'transpose': {
      const rank = w.values[x]!.type.shape.length;
      const outer = resolvePerm(node.attrs.perm as number[] | null, rank);
      if (outer.every((a, i) => a === i)) return keep(x);
      if (inner?.op !== 'transpose') return null;
      const first = resolvePerm(inner.attrs.perm as number[] | null, rank);
      // y = transpose(x, p1) has y.dim[d] = x.dim[p1[d]]; transposing y by p2 reads x.dim[p1[p2[d]]].
      const perm = outer.map((a) => first[a]!);
      const source = inner.inputs[0]!;
      if (perm.every((a, i) => a === i)) return keep(source);
      return emit(w, node, source, { perm }, want);
    }
    default:
      return null;
  }
}

/** One node replacing two, kept only if it gives exactly the type the original did. */
function emit(
  w: GraphWriter,
  node: Node,
  source: ValueId,
  attrs: Readonly<Record<string, unknown>>,
  want: TensorType,
): ValueId | null {
  const types = tryInfer(w, node.op, [source], { ...attrs });
  if (!types || !sameType(types[0]!, want)) return null;
  return w.add(node.op, [source], attrs, node.name)[0]!;
}
