import type { GraphData, Node, ValueId } from '../graph/graph.js';
import { isRegion, type Region } from '../graph/region.js';
import type { GraphWriter, PassResult } from './writer.js';

/**
 * A pass's core: rewrites a graph keeping `roots` (the values something outside reads: named
 * outputs and initializers of a graph, results of a region) and says where each value went.
 */
export type GraphRewrite = (graph: GraphData, roots: readonly ValueId[]) => PassResult;

/** The values read from outside a top-level graph. */
export function graphRoots(graph: GraphData): ValueId[] {
  return [...Object.values(graph.outputs), ...graph.initializers.map((i) => i.value)];
}

/** Runs `rewrite` on a region on its own; its inputs and results follow their values. */
export function rewriteRegion(region: Region, rewrite: GraphRewrite): Region {
  const { graph, valueMap } = rewrite(region, region.results);
  const at = (v: ValueId) => {
    const to = valueMap.get(v);
    if (to === undefined) throw new Error(`a pass dropped region value %${v}`);
    return to;
  };
  return { ...graph, inputs: region.inputs.map(at), results: region.results.map(at) };
}

/** A node's attributes with every region attribute (cond's branches, while's cond and body) rewritten. */
export function rewriteRegions(node: Node, rewrite: GraphRewrite): Readonly<Record<string, unknown>> {
  if (!Object.values(node.attrs).some(isRegion)) return node.attrs;
  return Object.fromEntries(
    Object.entries(node.attrs).map(([k, v]) => [k, isRegion(v) ? rewriteRegion(v, rewrite) : v]),
  );
}

/**
 * Copies `node` into `w` as it is, its inputs read through `map` and its regions rewritten by
 * `rewrite`, and records where its outputs went: what a pass does with every node it leaves alone.
 */
export function copyNode(
  w: GraphWriter,
  node: Node,
  map: Map<ValueId, ValueId>,
  rewrite: GraphRewrite,
): void {
  const outs = w.copy(
    node,
    node.inputs.map((v) => map.get(v)!),
    rewriteRegions(node, rewrite),
  );
  node.outputs.forEach((v, k) => map.set(v, outs[k]!));
}
