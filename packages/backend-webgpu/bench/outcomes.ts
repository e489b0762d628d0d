import type { Impl } from './table.js';

const firstLine = (e: unknown) => (e instanceof Error ? e.message.split('\n')[0]! : String(e));

/**
 * What happened to each measurement: the cells that could not be measured and why, and whether
 * any implementation computed a wrong result (which fails the run; a missing kernel does not).
 */
export class Outcomes {
  readonly failures: string[] = [];
  wrong = false;

  constructor(
    /** Implementations that cannot run at all here, with the reason. */
    readonly missing: Partial<Record<Impl, string>>,
  ) {
    // A device that fails part-way can leave a rejected promise nobody awaits (seen while
    // backend-webgpu lacked kernels); report it with the other failures, not die mid-table.
    process.on('unhandledRejection', (e) => {
      this.failures.push(`unhandled rejection: ${firstLine(e)}`);
    });
  }

  /** Runs one step of a measurement; a failure is listed under the tables and gives null. */
  async attempt<T>(what: string, impl: Impl, fn: () => Promise<T>): Promise<T | null> {
    if (impl in this.missing) return null;
    try {
      return await fn();
    } catch (e) {
      this.failures.push(`${what}, ${impl}: ${firstLine(e)}`);
      console.log(`  ${what}: ${impl} failed: ${firstLine(e)}`);
      return null;
    }
  }

  /** A result further than `tolerance` (relative) from kiln-cpu's is wrong. */
  checkClose(what: string, impl: Impl, error: number, tolerance = 1e-4): void {
    if (error <= tolerance) return;
    this.wrong = true;
    throw new Error(`${what}: ${impl} differs from kiln-cpu (relative error ${error.toExponential(2)})`);
  }
}
