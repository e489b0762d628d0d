import { KilnError } from '@kiln/ir';

/**
 * What one run of a graph kiln did not write may take. A graph that loads and verifies cleanly can
 * still ask for a huge one-hot, a broadcast to billions of elements, or a loop that never ends;
 * on a worker shared by many jobs that must be an error naming the limit, not a process that runs
 * out of memory or never answers. Every limit has a default and every default can be changed.
 */
export interface ResourceLimits {
  /** The largest single allocation: one tensor, or one executable's working memory. Default 2 GiB. */
  readonly maxTensorBytes?: number;
  /**
   * Device memory in use at once through one context (tensors, variables, values kept between
   * partitions, executables' working memory). Default 8 GiB.
   */
  readonly maxDeviceBytes?: number;
  /** Iterations of any one `while` loop in a run. Default 10,000,000. */
  readonly maxLoopIterations?: number;
  /**
   * Wall time of one run, in milliseconds. None by default for a Session (the caller owns its
   * process); set it here or per run. Checked between steps: one kernel is not interrupted.
   */
  readonly timeoutMillis?: number | undefined;
}

export interface Limits {
  readonly maxTensorBytes: number;
  readonly maxDeviceBytes: number;
  readonly maxLoopIterations: number;
  readonly timeoutMillis: number | undefined;
}

export const DEFAULT_LIMITS: Limits = {
  maxTensorBytes: 2 ** 31,
  maxDeviceBytes: 2 ** 33,
  maxLoopIterations: 10_000_000,
  timeoutMillis: undefined,
};

/** The limits in force: `given` over the defaults, each checked. */
export function resolveLimits(given: ResourceLimits = {}): Limits {
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const out: Limits = { ...DEFAULT_LIMITS, ...set };
  for (const key of ['maxTensorBytes', 'maxDeviceBytes', 'maxLoopIterations', 'timeoutMillis'] as const) {
    const v = out[key];
    if (v === undefined && key === 'timeoutMillis') continue;
    if (typeof v !== 'number' || !(v >= 0)) {
      throw new KilnError(
        'invalid-argument',
        `limits.${key} must be a non-negative number, got ${String(v)}`,
      );
    }
  }
  return out;
}

/** Bytes as a person reads them. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number(v.toPrecision(3))} ${units[u]}`;
}
