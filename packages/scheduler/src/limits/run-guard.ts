import { KilnError } from '@kiln/ir';
import type { Limits } from './limits.js';

/**
 * The checks one run makes between its steps: has the caller cancelled it, is it past its time,
 * has a loop gone past its iteration limit. Checked by clock and flag rather than by timers, since
 * a run on a synchronous device may not give timers a chance to fire until it ends.
 */
export class RunGuard {
  private readonly deadline: number;

  constructor(
    /** What runs, for messages ("Session.run"). */
    readonly what: string,
    readonly limits: Pick<Limits, 'maxLoopIterations'>,
    private readonly signal?: AbortSignal,
    private readonly timeoutMillis?: number,
    /** Which setting the timeout came from, for its message. */
    private readonly timeoutSetting = 'timeoutMillis',
  ) {
    this.deadline =
      timeoutMillis === undefined ? Number.POSITIVE_INFINITY : performance.now() + timeoutMillis;
  }

  /** Throws if the run was cancelled or is out of time. */
  check(): void {
    if (this.signal?.aborted) {
      const reason = this.signal.reason;
      throw new KilnError('cancelled', `${this.what} was cancelled by its caller`, { cause: reason });
    }
    if (performance.now() > this.deadline) {
      throw new KilnError(
        'timeout',
        `${this.what} took longer than ${this.timeoutMillis} ms (set by ${this.timeoutSetting})`,
      );
    }
  }

  /**
   * `work`, but rejected as soon as the caller cancels or the time is up, even while the run
   * still waits its turn; the run itself stops at its next check, and its own outcome is consumed.
   */
  settleEarly<T>(work: Promise<T>): Promise<T> {
    const timed = Number.isFinite(this.deadline);
    if (!this.signal && !timed) return work;
    return new Promise<T>((resolve, reject) => {
      const stop = () => {
        try {
          this.check();
        } catch (e) {
          cleanup();
          reject(e);
        }
      };
      const timer = timed ? setTimeout(stop, Math.max(0, this.deadline - performance.now()) + 1) : undefined;
      this.signal?.addEventListener('abort', stop, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', stop);
      };
      work.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (error: unknown) => {
          cleanup();
          reject(error);
        },
      );
    });
  }

  /** Called before iteration `n` (from 0) of a loop; `where` names the loop. */
  iteration(n: number, where: string): void {
    if (n >= this.limits.maxLoopIterations) {
      throw new KilnError(
        'limit',
        `${where}: more than ${this.limits.maxLoopIterations} iterations (limits.maxLoopIterations)`,
      );
    }
    this.check();
  }
}
