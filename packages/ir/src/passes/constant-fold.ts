import { KilnError } from '../errors.js';
import { constantValue, type GraphData, type Node, type ValueId } from '../graph/graph.js';
import { evaluateNode, ReferenceBudget, withReferenceBudget } from '../graph/reference-budget.js';
import type { Region } from '../graph/region.js';
import { EXECUTOR_OPS, opDef } from '../ops/index.js';
import { type RefTensor, refTensor } from '../ref-tensor.js';
import { GraphWriter, type PassResult } from './writer.js';

export interface FoldOptions {
  /** Largest result (in elements) worth baking into the graph as a constant. Default 65536. */
  readonly maxElements?: number;
  /**
   * Loop iterations folding one node may take, nested loops included, before it gives up on that
   * node. Default 10000.
   */
  readonly maxIterations?: number;
  /**
   * Work the whole pass may spend evaluating (flops, or elements produced, per node; see
   * ReferenceBudget), intermediates included. Past it, what is left stays unfolded. Default 2^27,
   * about a second of the float64 reference implementations.
   */
  readonly maxWork?: number;
  /** Bytes of values the whole pass may allocate, intermediates included, summed. Default 1 GiB. */
  readonly maxBytes?: number;
}

interface Folder {
  readonly w: GraphWriter;
  /** Values of the new graph known to be constant. */
  readonly known: Map<ValueId, RefTensor>;
  readonly options: Required<FoldOptions>;
  /** What the pass has left to spend, shared by the regions it folds. */
  readonly left: { work: number; bytes: number };
}

/**
 * Constant folding with the float64 reference implementations (rounded to each dtype, so a folded
 * value is what the device would have stored). It sees through control flow: a `cond` whose
 * predicate is constant is replaced by the branch it takes, a `while` whose carried values are all
 * constant is run to its end, and the regions of the rest are folded inside.
 */
export function foldConstants(graph: GraphData, options: FoldOptions = {}): PassResult {
  const f: Folder = {
    w: new GraphWriter(),
    known: new Map(),
    options: {
      maxElements: options.maxElements ?? 65536,
      maxIterations: options.maxIterations ?? 10000,
      maxWork: options.maxWork ?? 2 ** 27,
      maxBytes: options.maxBytes ?? 2 ** 30,
    },
    left: { work: options.maxWork ?? 2 ** 27, bytes: options.maxBytes ?? 2 ** 30 },
  };
  const map = new Map<ValueId, ValueId>();
  emit(f, graph, map);
  return { graph: f.w.graph(graph, map), valueMap: map };
}

function emit(f: Folder, source: GraphData, map: Map<ValueId, ValueId>): void {
  for (const node of source.nodes) {
    if (node.outputs.every((v) => map.has(v))) continue;
    const outs = foldNode(
      f,
      node,
      node.inputs.map((v) => map.get(v)!),
    );
    node.outputs.forEach((v, k) => map.set(v, outs[k]!));
  }
}

function foldNode(f: Folder, node: Node, ins: readonly ValueId[]): ValueId[] {
  const { w, known } = f;
  if (node.op === 'constant') {
    const [out] = w.copy(node, ins);
    const v = constantValue(node);
    known.set(out!, refTensor(v.dtype, v.shape, v.data));
    return [out!];
  }
  const values = ins.map((v) => known.get(v));
  if (node.op === 'cond') {
    const pred = values[0];
    if (pred) return inline(f, node.attrs[pred.data[0] ? 'then' : 'else'] as Region, ins.slice(1));
    return w.copy(node, ins, {
      ...node.attrs,
      // biome-ignore lint/suspicious/noThenProperty: the cond op's attribute, named for its branch; never awaited.
      then: foldRegion(f, node.attrs.then as Region),
      else: foldRegion(f, node.attrs.else as Region),
    });
  }
  if (node.op === 'while') {
    const done = values.every((v) => v !== undefined) ? runLoop(f, node, values as RefTensor[]) : null;
    if (done?.every((t) => t.data.length <= f.options.maxElements))
      return done.map((t) => constantOf(f, t, node));
    return w.copy(node, ins, {
      ...node.attrs,
      cond: foldRegion(f, node.attrs.cond as Region),
      body: foldRegion(f, node.attrs.body as Region),
    });
  }
  const def = opDef(node.op);
  // Sources with no inputs (random draws) gain nothing from folding but a bigger graph.
  if (EXECUTOR_OPS.has(node.op) || def.stateful || ins.length === 0 || values.some((v) => v === undefined)) {
    return w.copy(node, ins);
  }
  const outs = w.copy(node, ins);
  const small = outs.every(
    (v) => w.values[v]!.type.shape.reduce((a: number, d) => a * (d ?? Infinity), 1) <= f.options.maxElements,
  );
  if (!small) return outs;
  const types = outs.map((v) => w.values[v]!.type);
  const folded = withinBudget(f, () => evaluateNode(node, values as RefTensor[], types));
  // The copy is dropped by DCE later; the constants take its place.
  return folded ? folded.map((t) => constantOf(f, t, node)) : outs;
}

/**
 * Evaluates under what is left of the pass's budget, with the loop cap per node; null when the
 * budget runs out, so that node stays as it is. Only the budget's own verdict means "do not
 * fold": any other error propagates as it would have from the device.
 */
function withinBudget<T>(f: Folder, evaluate: () => T): T | null {
  const budget = new ReferenceBudget({
    iterations: f.options.maxIterations,
    work: f.left.work,
    bytes: f.left.bytes,
  });
  try {
    return withReferenceBudget(budget, evaluate);
  } catch (e) {
    if (e instanceof KilnError && e.code === 'limit') return null;
    throw e;
  } finally {
    f.left.work -= budget.work;
    f.left.bytes -= budget.bytes;
  }
}

function constantOf(f: Folder, t: RefTensor, node: Node): ValueId {
  const v = f.w.constant(t, node.name ? `${node.name}/folded` : undefined, node.device);
  f.known.set(v, t);
  return v;
}

/** A region's nodes emitted into the current graph, its inputs bound to `args`. */
function inline(f: Folder, region: Region, args: readonly ValueId[]): ValueId[] {
  const map = new Map<ValueId, ValueId>(region.inputs.map((v, i) => [v, args[i]!]));
  emit(f, region, map);
  return region.results.map((v) => map.get(v)!);
}

/** A region folded on its own (its inputs are not constants). */
function foldRegion(f: Folder, region: Region): Region {
  const inner: Folder = { w: new GraphWriter(), known: new Map(), options: f.options, left: f.left };
  const map = new Map<ValueId, ValueId>();
  emit(inner, region, map);
  return inner.w.region(region, map);
}

/** Runs a while loop on constants with the reference, unless it runs past the budget. */
function runLoop(f: Folder, node: Node, carried: RefTensor[]): RefTensor[] | null {
  const types = carried.map((t) => ({ dtype: t.dtype, shape: t.shape }));
  return withinBudget(f, () => evaluateNode(node, carried, types));
}
