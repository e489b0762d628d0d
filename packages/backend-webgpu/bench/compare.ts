import { type MeasureOptions, measure, median } from './measure.js';
import type { Outcomes } from './outcomes.js';
import { type Cell, IMPLS, type Impl } from './table.js';

/** One implementation of one benchmark case, set up and ready to time. */
export interface Candidate {
  readonly run: () => Promise<unknown>;
  /** Runs once and returns the relative error against kiln-cpu's result. */
  readonly check: () => Promise<number>;
  readonly dispose: () => unknown;
}

/**
 * Times every implementation that can run the case: each is set up and checked first, then timed
 * in `rounds` rounds in alternating order with the samples pooled, so load that comes and goes on
 * a shared machine falls on all of them alike. `rate` turns a median into a throughput.
 */
export async function compare(
  what: string,
  make: Readonly<Record<Impl, (() => Candidate) | null>>,
  outcomes: Outcomes,
  options: MeasureOptions & { readonly rounds: number; readonly rate: (ms: number) => number },
): Promise<Partial<Record<Impl, Cell>>> {
  const ready = new Map<Impl, Candidate>();
  const samples = new Map<Impl, number[]>();
  for (const impl of IMPLS) {
    const factory = make[impl];
    if (!factory) continue;
    const candidate = await outcomes.attempt(what, impl, async () => {
      const c = factory();
      try {
        outcomes.checkClose(what, impl, await c.check());
        return c;
      } catch (e) {
        await c.dispose();
        throw e;
      }
    });
    if (candidate) ready.set(impl, candidate);
  }
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 ? [...IMPLS].reverse() : IMPLS;
    for (const impl of order) {
      const c = ready.get(impl);
      if (!c) continue;
      const got = await outcomes.attempt(what, impl, () => measure(`${what} ${impl}`, c.run, options));
      if (got) samples.set(impl, [...(samples.get(impl) ?? []), ...got]);
      else {
        ready.delete(impl);
        samples.delete(impl);
        await c.dispose();
      }
    }
  }
  const cells: Partial<Record<Impl, Cell>> = {};
  for (const [impl, c] of ready) {
    await c.dispose();
    const all = samples.get(impl) ?? [];
    const medianMs = median(all);
    cells[impl] = { medianMs, samples: all.length, rate: options.rate(medianMs) };
    console.log(`  ${what}: ${impl} ${medianMs.toFixed(2)} ms (${all.length} samples)`);
  }
  return cells;
}
