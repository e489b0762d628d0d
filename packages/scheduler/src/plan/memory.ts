import { KilnError, type NodeId, type Subgraph, type ValueId } from '@kiln/ir';
import { bestPlacement, type FitStrategy } from './memory-fit.js';
import { analyzeLiveness, peakLiveBytes, pinnedValues } from './memory-liveness.js';
import { greedyOrder } from './memory-order.js';

export type { FitStrategy } from './memory-fit.js';
export { formatMemoryPlan, verifyPlan } from './memory-verify.js';

/** Where an intermediate value lives in the arena. */
export interface BufferAssignment {
  readonly offset: number;
  /** Aligned size. */
  readonly bytes: number;
  /** The input whose buffer an elementwise op overwrote to produce this value. */
  readonly inPlaceOf?: ValueId;
}

export interface OrderPeak {
  readonly arenaBytes: number;
  readonly lowerBound: number;
}

export interface MemoryPlan {
  /** The execution order the offsets are valid for. */
  readonly order: readonly NodeId[];
  /** Every intermediate value: neither an input, a result nor state of the subgraph. */
  readonly buffers: ReadonlyMap<ValueId, BufferAssignment>;
  /** Values the caller or executor owns; never in the arena, never reused. */
  readonly pinned: readonly ValueId[];
  readonly alignment: number;
  /** The arena size: the largest offset + bytes. */
  readonly arenaBytes: number;
  /** The largest total of buffer bytes live at one step (after in-place merging). */
  readonly lowerBound: number;
  /** The sum of every intermediate's aligned size: the arena with no reuse at all. */
  readonly noReuseBytes: number;
  /** The placement order that won. */
  readonly strategy: FitStrategy;
  /** Which execution order won, and the arena each gave. */
  readonly orderComparison: {
    readonly chosen: 'given' | 'greedy';
    readonly given: OrderPeak;
    readonly greedy?: OrderPeak;
  };
}

export interface MemoryPlanOptions {
  /** The execution order to plan for; by default the subgraph's node order. */
  readonly order?: readonly NodeId[];
  /** Byte alignment of every offset and size (default 64). */
  readonly alignment?: number;
  /** Whether to try a greedy order that lowers the peak (default true). */
  readonly reorder?: boolean;
}

interface Candidate {
  readonly order: readonly NodeId[];
  readonly buffers: Map<ValueId, BufferAssignment>;
  readonly arenaBytes: number;
  readonly lowerBound: number;
  readonly noReuseBytes: number;
  readonly strategy: FitStrategy;
}

function planForOrder(
  subgraph: Subgraph,
  order: readonly NodeId[],
  alignment: number,
  pinned: ReadonlySet<ValueId>,
): Candidate {
  const live = analyzeLiveness(subgraph, order, alignment, pinned);
  const placement = bestPlacement(live.groups);
  const buffers = new Map<ValueId, BufferAssignment>();
  let noReuseBytes = 0;
  for (const g of live.groups) {
    const offset = placement.offsets[g.id]!;
    for (const v of g.values) {
      noReuseBytes += g.bytes;
      const donor = live.inPlaceOf.get(v);
      buffers.set(
        v,
        donor === undefined ? { offset, bytes: g.bytes } : { offset, bytes: g.bytes, inPlaceOf: donor },
      );
    }
  }
  return {
    order,
    buffers,
    arenaBytes: placement.arenaBytes,
    lowerBound: peakLiveBytes(live.groups, order.length),
    noReuseBytes,
    strategy: placement.strategy,
  };
}

/**
 * Plans the arena of a concretely typed subgraph: liveness over an execution order, in-place reuse
 * for elementwise ops whose input dies there, and offsets by best fit under several placement
 * orders (as XLA's heap simulator does), for the given order and for a greedy one that lowers the
 * peak; the smaller arena wins. Control-flow nodes count as ordinary nodes whose outputs are
 * ordinary values.
 */
export function planMemory(subgraph: Subgraph, options: MemoryPlanOptions = {}): MemoryPlan {
  const alignment = options.alignment ?? 64;
  if (!Number.isInteger(alignment) || alignment < 1) {
    throw new KilnError(
      'invalid-argument',
      `memory plan: alignment must be a positive integer, got ${alignment}`,
    );
  }
  const pinned = pinnedValues(subgraph);
  const base = options.order ?? subgraph.nodes.map((n) => n.id);
  const given = planForOrder(subgraph, base, alignment, pinned);
  let chosen = given;
  let greedy: Candidate | undefined;
  if (options.reorder ?? true) {
    greedy = planForOrder(subgraph, greedyOrder(subgraph, base, pinned, alignment), alignment, pinned);
    if (greedy.arenaBytes < given.arenaBytes) chosen = greedy;
  }
  const peak = (c: Candidate): OrderPeak => ({ arenaBytes: c.arenaBytes, lowerBound: c.lowerBound });
  return {
    order: [...chosen.order],
    buffers: chosen.buffers,
    pinned: [...pinned].sort((a, b) => a - b),
    alignment,
    arenaBytes: chosen.arenaBytes,
    lowerBound: chosen.lowerBound,
    noReuseBytes: chosen.noReuseBytes,
    strategy: chosen.strategy,
    orderComparison: {
      chosen: chosen === given ? 'given' : 'greedy',
      given: peak(given),
      ...(greedy ? { greedy: peak(greedy) } : {}),
    },
  };
}
