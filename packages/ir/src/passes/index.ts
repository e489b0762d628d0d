import type { GraphData, ValueId } from '../graph/graph.js';
import { foldConstants } from './constant-fold.js';
import { eliminateDeadCode } from './dce.js';
import type { PassResult } from './writer.js';

export { type FoldOptions, foldConstants } from './constant-fold.js';
export { eliminateDeadCode } from './dce.js';
export { GraphWriter, type PassResult } from './writer.js';

export interface Pass {
  readonly name: string;
  run(graph: GraphData): PassResult;
}

/** What one pass did, for the pipeline's report. */
export interface PassReport {
  readonly pass: string;
  readonly nodesBefore: number;
  readonly nodesAfter: number;
}

export const DEFAULT_PASSES: readonly Pass[] = [
  { name: 'constant folding', run: (g) => foldConstants(g) },
  { name: 'dead-code elimination', run: eliminateDeadCode },
];

/** Runs passes in order, composing their value maps, and reports node counts per pass. */
export function optimize(
  graph: GraphData,
  passes: readonly Pass[] = DEFAULT_PASSES,
): PassResult & { report: PassReport[] } {
  let current = graph;
  let map = new Map<ValueId, ValueId>(graph.values.map((v) => [v.id, v.id]));
  const report: PassReport[] = [];
  for (const pass of passes) {
    const result = pass.run(current);
    const next = new Map<ValueId, ValueId>();
    for (const [from, to] of map) {
      const moved = result.valueMap.get(to);
      if (moved !== undefined) next.set(from, moved);
    }
    report.push({
      pass: pass.name,
      nodesBefore: current.nodes.length,
      nodesAfter: result.graph.nodes.length,
    });
    current = result.graph;
    map = next;
  }
  return { graph: current, valueMap: map, report };
}
