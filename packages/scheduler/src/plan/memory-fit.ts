import type { BufferGroup } from './memory-liveness.js';

/** The orders in which best fit places buffers; the plan keeps whichever gives the smaller arena. */
export type FitStrategy = 'size' | 'lifetime' | 'start';

export const FIT_STRATEGIES: readonly FitStrategy[] = ['size', 'lifetime', 'start'];

export interface Placement {
  readonly strategy: FitStrategy;
  /** Offsets by group id. */
  readonly offsets: readonly number[];
  readonly arenaBytes: number;
}

const span = (g: BufferGroup) => g.end - g.start;

const COMPARE: Record<FitStrategy, (a: BufferGroup, b: BufferGroup) => number> = {
  size: (a, b) => b.bytes - a.bytes || span(b) - span(a) || a.start - b.start || a.id - b.id,
  lifetime: (a, b) => span(b) - span(a) || b.bytes - a.bytes || a.start - b.start || a.id - b.id,
  start: (a, b) => a.start - b.start || b.bytes - a.bytes || a.id - b.id,
};

const overlapsInTime = (a: BufferGroup, b: BufferGroup) => a.start <= b.end && b.start <= a.end;

/**
 * Best fit over offsets: each buffer, in the strategy's order, goes into the gap between buffers
 * already placed (those alive at the same time) that wastes the fewest bytes; the space above the
 * highest of them counts as a gap up to the arena's current top. Only when nothing fits does the
 * arena grow. Sizes are aligned, so every offset is too.
 */
export function bestFit(groups: readonly BufferGroup[], strategy: FitStrategy): Placement {
  const offsets = new Array<number>(groups.length).fill(0);
  const placed: BufferGroup[] = [];
  let arena = 0;
  for (const g of [...groups].sort(COMPARE[strategy])) {
    const busy = placed
      .filter((p) => p.bytes > 0 && overlapsInTime(p, g))
      .map((p) => ({ lo: offsets[p.id]!, hi: offsets[p.id]! + p.bytes }))
      .sort((a, b) => a.lo - b.lo);
    let best = -1;
    let bestWaste = Number.POSITIVE_INFINITY;
    let cursor = 0;
    const consider = (lo: number, hi: number) => {
      const waste = hi - lo - g.bytes;
      if (waste >= 0 && waste < bestWaste) {
        best = lo;
        bestWaste = waste;
      }
    };
    for (const b of busy) {
      if (b.lo > cursor) consider(cursor, b.lo);
      cursor = Math.max(cursor, b.hi);
    }
    if (arena > cursor) consider(cursor, arena);
    const offset = best >= 0 ? best : cursor;
    offsets[g.id] = offset;
    arena = Math.max(arena, offset + g.bytes);
    placed.push(g);
  }
  return { strategy, offsets, arenaBytes: arena };
}

/** Runs every strategy and keeps the smallest arena (the first listed on a tie). */
export function bestPlacement(groups: readonly BufferGroup[]): Placement {
  let best: Placement | undefined;
  for (const s of FIT_STRATEGIES) {
    const p = bestFit(groups, s);
    if (!best || p.arenaBytes < best.arenaBytes) best = p;
  }
  return best!;
}
