import type { NodeQuery } from '../abi/device.js';
import type { GraphData, ValueId } from '../graph/graph.js';
import { foldConstants } from './constant-fold.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { eliminateDeadCode } from './dce.js';
import type { SupportOracle } from './expand.js';
import { type FusionOptions, fuseElementwise } from './fusion.js';
import { fuseMatmulEpilogues, type MatmulEpilogueOptions } from './matmul-epilogue.js';
import { simplify } from './simplify.js';
import type { PassResult } from './writer.js';

export {
  FUSIBLE_OPS,
  type FusedAttrs,
  type FusedStep,
  type FusibleOp,
  fusedSlotDTypes,
  isFusibleOp,
  MAX_FUSED_INPUTS,
  MAX_FUSED_STEPS,
  parseFusedAttrs,
  randomFusedProgram,
} from '../ops/fused.js';
export { type FoldOptions, foldConstants } from './constant-fold.js';
export { type CseResult, eliminateCommonSubexpressions } from './cse.js';
export { eliminateDeadCode, pruneToOutputs } from './dce.js';
export {
  type Expanded,
  type Expansion,
  expandComposites,
  type SupportOracle,
  supportWithExpansion,
} from './expand.js';
export { type FusionOptions, type FusionResult, fuseElementwise } from './fusion.js';
export {
  fuseMatmulEpilogues,
  type MatmulEpilogueOptions,
  type MatmulEpilogueResult,
} from './matmul-epilogue.js';
export { type SimplifyResult, simplify } from './simplify.js';
export { GraphWriter, type PassResult } from './writer.js';

export interface Pass {
  readonly name: string;
  /** The new graph and value map; `detail` is a line for the report ("3 groups, 17 ops"). */
  run(graph: GraphData): PassResult & { readonly detail?: string };
}

/** What one pass did, for the pipeline's report. */
export interface PassReport {
  readonly pass: string;
  readonly nodesBefore: number;
  readonly nodesAfter: number;
  /** What the pass counted, when it says more than node counts do. */
  readonly detail?: string;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The passes one at a time, each reporting what it counted. */
export const PASSES = {
  constantFolding: { name: 'constant folding', run: (g) => foldConstants(g) },
  simplify: {
    name: 'algebraic simplification',
    run: (g) => {
      const r = simplify(g);
      return { ...r, detail: plural(r.rewrites, 'rewrite') };
    },
  },
  cse: {
    name: 'common-subexpression elimination',
    run: (g) => {
      const r = eliminateCommonSubexpressions(g);
      return { ...r, detail: `${plural(r.merged, 'node')} merged` };
    },
  },
  dce: { name: 'dead-code elimination', run: eliminateDeadCode },
  fusion: fusionPass(),
} as const satisfies Record<string, Pass>;

/** Elementwise fusion as a pass, reporting its groups. */
function fusionPass(options: FusionOptions = {}): Pass {
  return {
    name: 'elementwise fusion',
    run: (g) => {
      const r = fuseElementwise(g, options);
      return { ...r, detail: `${plural(r.groups, 'group')}, ${plural(r.fusedOps, 'op')}` };
    },
  };
}

/** Epilogue fusion as a pass, for one device (or every device of a plan): see fuseMatmulEpilogues. */
export function matmulEpiloguePass(options: MatmulEpilogueOptions): Pass {
  return {
    name: 'matmul epilogue fusion',
    run: (g) => {
      const r = fuseMatmulEpilogues(g, options);
      return { ...r, detail: plural(r.fused, 'product') };
    },
  };
}

/**
 * The default pipeline: fold constants, simplify (which folding can expose, and which exposes
 * duplicates), merge duplicates, drop what nothing reads, then fuse elementwise ops and clean up
 * once more. Fusion runs last: it is for devices, after every rewrite that reasons about single ops.
 */
export const DEFAULT_PASSES: readonly Pass[] = [
  PASSES.constantFolding,
  PASSES.simplify,
  PASSES.cse,
  PASSES.dce,
  PASSES.fusion,
  PASSES.dce,
];

/**
 * The default pipeline for one device: fusion asks `device` about each group, so a device without
 * a fusion compiler (one that declines `fused`) keeps its elementwise ops as they are; then, for a
 * device that claims `fusedMatmul`, each product and the elementwise node after it become one node.
 */
export function passesFor(device: SupportOracle): readonly Pass[] {
  const accepts = (node: NodeQuery) => device.supports(node).ok;
  const fusion = fusionPass({ accepts });
  return DEFAULT_PASSES.flatMap((p) =>
    p === PASSES.fusion ? [fusion, matmulEpiloguePass({ accepts })] : [p],
  );
}

/** The default pipeline without fusion: for graphs that still go through per-op transformations. */
export const PASSES_WITHOUT_FUSION: readonly Pass[] = DEFAULT_PASSES.filter((p) => p !== PASSES.fusion);

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
      ...(result.detail === undefined ? {} : { detail: result.detail }),
    });
    current = result.graph;
    map = next;
  }
  return { graph: current, valueMap: map, report };
}

/** The report as lines: "elementwise fusion: 12 -> 5 nodes (2 groups, 9 ops)". */
export function formatPassReport(report: readonly PassReport[]): string {
  return report
    .map((r) => `${r.pass}: ${r.nodesBefore} -> ${r.nodesAfter} nodes${r.detail ? ` (${r.detail})` : ''}`)
    .join('\n');
}
