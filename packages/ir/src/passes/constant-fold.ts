import { constantValue, type GraphData, type Node, type ValueId } from '../graph/graph.js';
import { interpretRegion, type Region } from '../graph/region.js';
import { EXECUTOR_OPS, opDef } from '../ops/index.js';
import { type RefTensor, refTensor } from '../ref-tensor.js';
import { GraphWriter, type PassResult } from './writer.js';

export interface FoldOptions {
  /** Largest result (in elements) worth baking into the graph as a constant. Default 65536. */
  readonly maxElements?: number;
  /** Iterations a while loop on constants may take before folding gives up on it. Default 10000. */
  readonly maxIterations?: number;
}

interface Folder {
  readonly w: GraphWriter;
  /** Values of the new graph known to be constant. */
  readonly known: Map<ValueId, RefTensor>;
  readonly options: Required<FoldOptions>;
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
    options: { maxElements: options.maxElements ?? 65536, maxIterations: options.maxIterations ?? 10000 },
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
    if (done) return done.map((t) => constantOf(f, t, node));
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
  // The copy is dropped by DCE later; the constants take its place.
  return def.reference(values as RefTensor[], node.attrs).map((t) => constantOf(f, t, node));
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
  const inner: Folder = { w: new GraphWriter(), known: new Map(), options: f.options };
  const map = new Map<ValueId, ValueId>();
  emit(inner, region, map);
  return inner.w.region(region, map);
}

/** Runs a while loop on constants with the reference, unless it is too long or its results too big. */
function runLoop(f: Folder, node: Node, carried: RefTensor[]): RefTensor[] | null {
  const cap = node.attrs.maxIterations as number;
  let values = carried;
  for (let i = 0; cap < 0 || i < cap; i++) {
    if (i >= f.options.maxIterations) return null;
    const [go] = interpretRegion(node.attrs.cond as Region, values, 'while: cond region');
    if (!go!.data[0]) break;
    values = interpretRegion(node.attrs.body as Region, values, 'while: body region');
    if (values.some((t) => t.data.length > f.options.maxElements)) return null;
  }
  return values;
}
