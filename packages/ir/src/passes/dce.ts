import type { GraphData, Node, ValueId } from '../graph/graph.js';
import type { Region } from '../graph/region.js';
import { GraphWriter, type PassResult } from './writer.js';

/** Nodes kept whatever reads them: the graph's interface and its side effects. */
const ALWAYS_LIVE = new Set(['placeholder', 'variable', 'assign']);

/**
 * Dead-code elimination: drops every node no output, initializer, region result or side effect
 * needs. It sees through control flow: regions are cleaned recursively, and results of a `cond`
 * that nothing reads are removed from both branches (and so is what computed them).
 */
export function eliminateDeadCode(graph: GraphData): PassResult {
  const roots = [...Object.values(graph.outputs), ...graph.initializers.map((i) => i.value)];
  return clean(graph, roots);
}

/**
 * Only what the graph's outputs need, interface included: placeholders, variables and assigns
 * that no output depends on go too. For a plan of one computation, not for a graph kept for reuse.
 */
export function pruneToOutputs(graph: GraphData): PassResult {
  return clean({ ...graph, initializers: [] }, Object.values(graph.outputs), false);
}

function clean(graph: GraphData, roots: readonly ValueId[], keepInterface = true): PassResult {
  const used = new Set<ValueId>(roots);
  const live = new Uint8Array(graph.nodes.length);
  for (let id = graph.nodes.length - 1; id >= 0; id--) {
    const node = graph.nodes[id]!;
    if (!(keepInterface && ALWAYS_LIVE.has(node.op)) && !node.outputs.some((v) => used.has(v))) continue;
    live[id] = 1;
    for (const v of node.inputs) used.add(v);
  }
  const w = new GraphWriter();
  const map = new Map<ValueId, ValueId>();
  graph.nodes.forEach((node, id) => {
    if (!live[id]) return;
    const ins = node.inputs.map((v) => map.get(v)!);
    const outs = node.op === 'cond' ? cleanCond(w, node, ins, used) : w.copy(node, ins, cleanRegions(node));
    node.outputs.forEach((v, k) => {
      if (outs[k] !== undefined) map.set(v, outs[k]!);
    });
  });
  return { graph: w.graph(graph, map), valueMap: map };
}

function cleanRegion(region: Region): Region {
  const { graph, valueMap } = clean(region, region.results);
  return {
    ...graph,
    inputs: region.inputs.map((v) => valueMap.get(v)!),
    results: region.results.map((v) => valueMap.get(v)!),
  };
}

function cleanRegions(node: Node): Readonly<Record<string, unknown>> {
  if (node.op !== 'while') return node.attrs;
  return {
    ...node.attrs,
    cond: cleanRegion(node.attrs.cond as Region),
    body: cleanRegion(node.attrs.body as Region),
  };
}

/** A cond keeping only the results something reads; returns new ids at the kept positions. */
function cleanCond(
  w: GraphWriter,
  node: Node,
  ins: readonly ValueId[],
  used: ReadonlySet<ValueId>,
): (ValueId | undefined)[] {
  const keep = node.outputs.map((v) => used.has(v));
  const trim = (r: Region): Region => cleanRegion({ ...r, results: r.results.filter((_, k) => keep[k]) });
  const outs = w.copy(node, ins, {
    ...node.attrs,
    // biome-ignore lint/suspicious/noThenProperty: the cond op's attribute, named for its branch; never awaited.
    then: trim(node.attrs.then as Region),
    else: trim(node.attrs.else as Region),
  });
  let next = 0;
  return keep.map((k) => (k ? outs[next++] : undefined));
}
