import { KilnError, type Subgraph, type ValueId } from '@kiln/ir';
import type { MemoryPlan } from './memory.js';
import { checkOrder, lifetimesFor, pinnedValues, valueBytes } from './memory-liveness.js';

const fail = (message: string) => new KilnError('runtime', `memory plan: ${message}`);

/**
 * Checks a plan against the subgraph from scratch: the order is a topological order of every node;
 * every intermediate has an aligned buffer inside the arena, large enough, and no pinned value has
 * one; no two values alive at the same step share bytes, except a value written in place of an
 * input whose last use is that very node. Throws a KilnError('runtime') naming what is wrong.
 */
export function verifyPlan(subgraph: Subgraph, plan: MemoryPlan): void {
  const steps = checkOrder(subgraph, plan.order);
  const lifetimes = lifetimesFor(subgraph, steps);
  const pinned = pinnedValues(subgraph);
  for (const v of pinned) {
    if (plan.buffers.has(v)) throw fail(`pinned value %${v} has an arena buffer`);
  }
  const entries: { v: ValueId; start: number; end: number; lo: number; hi: number }[] = [];
  for (const [v, life] of lifetimes) {
    if (pinned.has(v)) continue;
    const b = plan.buffers.get(v);
    if (!b) throw fail(`intermediate value %${v} has no buffer`);
    if (b.offset % plan.alignment !== 0 || b.bytes % plan.alignment !== 0) {
      throw fail(`buffer of %${v} (offset ${b.offset}, ${b.bytes} bytes) is not ${plan.alignment}-aligned`);
    }
    if (b.bytes < valueBytes(subgraph, v)) throw fail(`buffer of %${v} is smaller than the value`);
    if (b.offset < 0 || b.offset + b.bytes > plan.arenaBytes) {
      throw fail(
        `buffer of %${v} [${b.offset}, ${b.offset + b.bytes}) is outside the ${plan.arenaBytes}-byte arena`,
      );
    }
    if (b.inPlaceOf !== undefined) {
      const donor = plan.buffers.get(b.inPlaceOf);
      const producer = subgraph.nodes[subgraph.values[v]!.node]!;
      if (
        !donor ||
        donor.offset !== b.offset ||
        !producer.inputs.includes(b.inPlaceOf) ||
        lifetimes.get(b.inPlaceOf)!.end !== life.start
      ) {
        throw fail(`%${v} is not a valid in-place reuse of %${b.inPlaceOf}`);
      }
    }
    entries.push({ v, start: life.start, end: life.end, lo: b.offset, hi: b.offset + b.bytes });
  }
  for (const v of plan.buffers.keys()) {
    if (!lifetimes.has(v) || pinned.has(v)) throw fail(`buffer for %${v}, which is not an intermediate`);
  }
  entries.sort((a, b) => a.start - b.start);
  for (let i = 0; i < entries.length; i++) {
    const a = entries[i]!;
    for (let j = i + 1; j < entries.length && entries[j]!.start <= a.end; j++) {
      const b = entries[j]!;
      if (a.lo >= b.hi || b.lo >= a.hi) continue;
      const inPlace = plan.buffers.get(b.v)!.inPlaceOf === a.v || plan.buffers.get(a.v)!.inPlaceOf === b.v;
      if (inPlace) continue;
      throw fail(
        `%${a.v} (steps ${a.start}-${a.end}, bytes [${a.lo}, ${a.hi})) and %${b.v} (steps ${b.start}-${b.end}, bytes [${b.lo}, ${b.hi})) overlap`,
      );
    }
  }
}

const mib = (bytes: number) =>
  bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

/** A short report: arena against the lower bound and against no reuse. */
export function formatMemoryPlan(plan: MemoryPlan): string {
  const inPlace = [...plan.buffers.values()].filter((b) => b.inPlaceOf !== undefined).length;
  const ratio = (a: number, b: number) => (b === 0 ? '-' : (a / b).toFixed(2));
  const c = plan.orderComparison;
  const orders = c.greedy
    ? `given order ${mib(c.given.arenaBytes)}, greedy order ${mib(c.greedy.arenaBytes)}; ${c.chosen} kept`
    : 'given order';
  return [
    `arena ${mib(plan.arenaBytes)} (${plan.arenaBytes} B), lower bound ${mib(plan.lowerBound)}, no reuse ${mib(plan.noReuseBytes)}`,
    `arena/lower bound ${ratio(plan.arenaBytes, plan.lowerBound)}, arena/no reuse ${ratio(plan.arenaBytes, plan.noReuseBytes)}`,
    `${plan.buffers.size} intermediates (${inPlace} in place), ${plan.pinned.length} pinned; best fit by ${plan.strategy}; ${orders}`,
  ].join('\n');
}
