import { Bench } from 'tinybench';

export interface MeasureOptions {
  /** At least this many timed calls... */
  readonly iterations: number;
  /** ...and at least this long. */
  readonly timeMs: number;
  /** Untimed calls first (pipeline compiles, allocations). */
  readonly warmup: number;
}

/** Milliseconds per call of `fn`, one sample per call, with tinybench. */
export async function measure(
  name: string,
  fn: () => Promise<unknown>,
  options: MeasureOptions,
): Promise<number[]> {
  const bench = new Bench({
    time: options.timeMs,
    iterations: options.iterations,
    warmup: options.warmup > 0,
    warmupIterations: options.warmup,
    warmupTime: 0,
    retainSamples: true,
    throws: true,
  });
  bench.add(name, fn);
  await bench.run();
  const result = bench.tasks[0]!.result;
  if (!('latency' in result) || !result.latency.samples) throw new Error(`${name}: no samples`);
  return [...result.latency.samples];
}

/** The median, as in the scheduler's benchmarks: a GC pause or a late compile does not move it. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The largest difference relative to the largest magnitude: how far `got` is from `want`. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let scale = 1e-30;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}
