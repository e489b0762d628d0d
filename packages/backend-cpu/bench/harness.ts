import { Bench } from 'tinybench';
import type { Budget } from './cases.js';
import type { Side } from './sides.js';

export interface Latencies {
  /** Every timed call of every round, in ms, ascending. */
  readonly samples: number[];
  readonly median: number;
}

export interface Agreement {
  readonly ok: boolean;
  readonly maxAbsDiff: number;
  readonly message: string;
}

/** Checks kiln against tfjs elementwise before anything is timed, so both do the same work. */
export function agree(kiln: Float32Array, tfjs: Float32Array, atol: number, rtol: number): Agreement {
  if (kiln.length !== tfjs.length)
    return {
      ok: false,
      maxAbsDiff: Infinity,
      message: `kiln gave ${kiln.length} values, tfjs ${tfjs.length}`,
    };
  let bad = 0;
  let first = '';
  let maxAbsDiff = 0;
  for (let i = 0; i < kiln.length; i++) {
    const d = Math.abs(kiln[i]! - tfjs[i]!);
    if (!(d <= atol + rtol * Math.abs(tfjs[i]!))) {
      if (bad++ === 0) first = `element ${i}: kiln ${kiln[i]}, tfjs ${tfjs[i]}`;
    }
    if (d > maxAbsDiff || Number.isNaN(d)) maxAbsDiff = d;
  }
  return bad === 0
    ? { ok: true, maxAbsDiff, message: `agree (max |diff| ${maxAbsDiff.toExponential(2)})` }
    : { ok: false, maxAbsDiff, message: `${bad} of ${kiln.length} values differ; first at ${first}` };
}

export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Times both sides in interleaved rounds: each round is one tinybench run holding both tasks,
 * with the order swapped every round, so a slow spell of a shared machine (other processes,
 * thermal limits) lands on both sides rather than on whichever happened to run then. Samples
 * of all rounds are pooled and summarised by their median, which such spells move least.
 */
export function measurePair(budget: Budget, kiln: Side, tfjs: Side): { kiln: Latencies; tfjs: Latencies } {
  for (let i = 0; i < budget.warmup; i++) {
    kiln.run();
    tfjs.run();
  }
  const pooled = { kiln: [] as number[], tfjs: [] as number[] };
  for (let round = 0; round < budget.rounds; round++) {
    const bench = new Bench({
      time: budget.time,
      iterations: budget.iterations,
      warmup: false,
      retainSamples: true,
      throws: true,
    });
    const order = round % 2 === 0 ? (['kiln', 'tfjs'] as const) : (['tfjs', 'kiln'] as const);
    for (const who of order) bench.add(who, who === 'kiln' ? kiln.run : tfjs.run);
    for (const task of bench.runSync()) {
      const result = task.result;
      if (!('latency' in result) || !result.latency.samples)
        throw new Error(`${task.name}: no samples (state ${result.state})`);
      pooled[task.name as 'kiln' | 'tfjs'].push(...result.latency.samples);
    }
  }
  const summarise = (samples: number[]): Latencies => {
    samples.sort((a, b) => a - b);
    return { samples, median: median(samples) };
  };
  return { kiln: summarise(pooled.kiln), tfjs: summarise(pooled.tfjs) };
}
