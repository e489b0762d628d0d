import { KilnError, type KilnErrorCode } from '../errors.js';

/**
 * Runs fuzz cases one seed at a time, timing each, and collects what a test asserts on: how the
 * cases ended, the failures (each naming its seed), and the slowest case. Case i of a campaign
 * with base seed s has seed caseSeed(s, i), and caseSeed(s, 0) is s itself: a failing case replays
 * alone as a campaign of one case whose base seed is the case's seed.
 */

/** How one case ended: a name to count it under, and a failure message when it broke the property. */
export interface CaseVerdict {
  readonly outcome: string;
  readonly failure?: string;
}

export interface CampaignOptions<R = CaseVerdict> {
  readonly cases: number;
  readonly seed: number;
  /** The most milliseconds one case may take; a slower case fails the campaign. */
  readonly boundMs: number;
  readonly run: (seed: number) => R;
}

export interface CampaignReport {
  readonly cases: number;
  readonly ms: number;
  readonly outcomes: ReadonlyMap<string, number>;
  /** Each begins with the seed of its case. */
  readonly failures: readonly string[];
  readonly slowest: { readonly seed: number; readonly ms: number; readonly outcome: string };
}

export const caseSeed = (base: number, i: number): number => (base + Math.imul(i, 0x9e3779b9)) >>> 0;

export const hexSeed = (seed: number): string => `0x${seed.toString(16)}`;

/** The campaign's size and seed: the defaults, or KILN_FUZZ_CASES and KILN_FUZZ_SEED when set. */
export function fuzzSettings(
  env: Readonly<Record<string, string | undefined>>,
  defaults: { readonly cases: number; readonly seed: number },
): { cases: number; seed: number } {
  const read = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw} is not a nonnegative integer`);
    return n;
  };
  return {
    cases: read('KILN_FUZZ_CASES', defaults.cases),
    seed: read('KILN_FUZZ_SEED', defaults.seed) >>> 0,
  };
}

export function runCampaign(options: CampaignOptions): CampaignReport {
  const tally = new Tally(options);
  for (let i = 0; i < options.cases; i++) {
    const seed = caseSeed(options.seed, i);
    const t0 = performance.now();
    let verdict: CaseVerdict;
    try {
      verdict = options.run(seed);
    } catch (e) {
      verdict = threw(e);
    }
    tally.add(seed, verdict, performance.now() - t0);
  }
  return tally.report();
}

/** runCampaign for cases that await something (a file read); the cases still run one at a time. */
export async function runCampaignAsync(
  options: CampaignOptions<Promise<CaseVerdict>>,
): Promise<CampaignReport> {
  const tally = new Tally(options);
  for (let i = 0; i < options.cases; i++) {
    const seed = caseSeed(options.seed, i);
    const t0 = performance.now();
    let verdict: CaseVerdict;
    try {
      verdict = await options.run(seed);
    } catch (e) {
      verdict = threw(e);
    }
    tally.add(seed, verdict, performance.now() - t0);
  }
  return tally.report();
}

/** The case's own code (mutating, checking) threw: that is a failure of the case too. */
const threw = (e: unknown): CaseVerdict => ({
  outcome: 'case threw',
  failure: `the case threw ${describeError(e)}`,
});

class Tally {
  private readonly outcomes = new Map<string, number>();
  private readonly failures: string[] = [];
  private slowest: { seed: number; ms: number; outcome: string };
  private readonly started = performance.now();

  constructor(private readonly options: CampaignOptions<unknown>) {
    this.slowest = { seed: options.seed, ms: -1, outcome: '' };
  }

  add(seed: number, verdict: CaseVerdict, ms: number): void {
    this.outcomes.set(verdict.outcome, (this.outcomes.get(verdict.outcome) ?? 0) + 1);
    if (verdict.failure) this.failures.push(`seed ${hexSeed(seed)}: ${verdict.failure}`);
    if (ms > this.options.boundMs)
      this.failures.push(
        `seed ${hexSeed(seed)}: took ${ms.toFixed(0)} ms (${verdict.outcome}), over ${this.options.boundMs} ms`,
      );
    if (ms > this.slowest.ms) this.slowest = { seed, ms, outcome: verdict.outcome };
  }

  report(): CampaignReport {
    const { cases } = this.options;
    const { outcomes, failures, slowest } = this;
    return { cases, ms: performance.now() - this.started, outcomes, failures, slowest };
  }
}

/** One line per campaign: size, time, the slowest case, and the outcomes by count. */
export function formatCampaign(name: string, report: CampaignReport): string {
  const counts = [...report.outcomes]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const { seed, ms, outcome } = report.slowest;
  return (
    `${name}: ${report.cases} cases in ${(report.ms / 1000).toFixed(2)} s; ` +
    `slowest seed ${hexSeed(seed)} ${ms.toFixed(1)} ms (${outcome}); ${counts}`
  );
}

/** What calling a decoder came to: a value, a KilnError with the expected code, or anything else. */
export type Attempt<T> =
  | { readonly kind: 'value'; readonly value: T }
  | { readonly kind: 'rejected'; readonly error: KilnError }
  | { readonly kind: 'crash'; readonly description: string };

export function attempt<T>(decode: () => T, code: KilnErrorCode): Attempt<T> {
  try {
    return { kind: 'value', value: decode() };
  } catch (e) {
    if (e instanceof KilnError && e.code === code) return { kind: 'rejected', error: e };
    return { kind: 'crash', description: describeError(e) };
  }
}

/** An attempt's outcome as text: two attempts on the same bytes must give the same. */
export function describeAttempt(a: Attempt<unknown>): string {
  if (a.kind === 'value') return 'a value';
  return a.kind === 'rejected' ? `rejected: ${a.error.message}` : `crashed: ${a.description}`;
}

/** An error's class, code and first stack frames, on one line. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `a non-error ${typeof e}: ${String(e).slice(0, 100)}`;
  const code = e instanceof KilnError ? ` (code '${e.code}')` : '';
  const stack = (e.stack ?? `${e.name}: ${e.message}`).split('\n').slice(0, 4).join(' | ');
  return `${e.constructor.name}${code}: ${stack}`;
}
