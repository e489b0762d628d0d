import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, type HostTensor, KilnError } from '@kiln/ir';
import type { Cluster } from '../cluster/cluster.js';
import type { JobEventBody } from './job-events.js';
import type { TrainJobSpec } from './job-spec.js';

/** The state a training job can go back to: every variable (optimizer state too) after `step` steps. */
export interface Commit {
  readonly step: number;
  readonly variables: ReadonlyMap<string, HostTensor>;
}

/**
 * A training job's answer to a lost worker. Steps are atomic, so a step that fails changes
 * nothing; the data order depends only on (seed, epoch) and the step, so replaying steps from a
 * commit computes what they computed the first time. A step that failed because a worker died or
 * hung (the cluster replaces such a worker: its generation changes) is therefore recovered by
 * waiting for the replacement, restoring the last commit on every worker and replaying from it.
 * A job whose arithmetic does not depend on its number of workers (data parallelism with fixed
 * micro-batches) need not wait: when no replacement comes in time, it goes on with the workers it
 * has left, from the same commit, and still ends with the weights it would have had.
 * A failure that lost no worker (a kernel error, a bad value) would fail again: it is not retried.
 */
export class Recovery {
  private commit: Commit | null = null;
  private restarts = 0;
  private readonly generations: Map<string, number>;
  /** The workers the job runs on: fewer after it went on without a lost one. */
  private current: readonly string[];

  constructor(
    private readonly spec: TrainJobSpec['recovery'],
    private readonly cluster: Cluster,
    workers: readonly string[],
    /** Whether the job may go on with fewer workers (its result does not depend on how many). */
    private readonly canShrink: boolean,
  ) {
    this.current = workers;
    this.generations = new Map(workers.map((w) => [w, cluster.generation(w)]));
  }

  /** Whether the state after `step` steps is to be committed (the first step, then every N). */
  due(step: number): boolean {
    return this.spec.retries > 0 && (step === 1 || step % this.spec.commitEvery === 0);
  }

  committed(commit: Commit): void {
    this.commit = commit;
  }

  /**
   * After step `step` (1-based) failed with `error`: the step to resume after, once the lost
   * workers are back (or, for a job that can, once it goes on without them) and the commit is
   * restored by `restore` (given the workers left when the job goes on with fewer); or `error`
   * again when this is not a lost worker or the retries are spent. Says what happened in `emit`.
   */
  async recover(
    error: unknown,
    step: number,
    restore: (variables: ReadonlyMap<string, HostTensor>, fewer?: readonly string[]) => Promise<void>,
    emit: (events: readonly JobEventBody[]) => void,
  ): Promise<number> {
    const { retries, replaceTimeoutMillis } = this.spec;
    if (!(error instanceof KilnError) || (error.code !== 'worker' && error.code !== 'timeout')) throw error;
    if (this.restarts >= retries) {
      if (retries === 0) throw error;
      throw new KilnError(
        error.code,
        `${error.message}\n(the job had recovered ${this.restarts} time${this.restarts === 1 ? '' : 's'} already: recovery.retries is ${retries})`,
        { cause: error },
      );
    }
    const started = performance.now();
    const gone = await this.replaced(replaceTimeoutMillis, error);
    const lost = this.current.filter((w) => this.cluster.generation(w) !== this.generations.get(w));
    if (lost.length === 0 && gone.length === 0) throw error;
    const commit = this.commit;
    if (!commit)
      throw new KilnError(
        error.code,
        `${error.message}\n(no commit to recover from: the first is made after step 1)`,
        {
          cause: error,
        },
      );
    for (const w of lost) this.generations.set(w, this.cluster.generation(w));
    this.restarts++;
    const fewer = gone.length > 0 ? this.current.filter((w) => !gone.includes(w)) : undefined;
    await restore(commit.variables, fewer);
    if (fewer) this.current = fewer;
    const waited = Math.round(performance.now() - started);
    const replay = step - 1 - commit.step;
    const what = fewer
      ? `${gone.join(', ')} not replaced within ${replaceTimeoutMillis} ms (recovery.replaceTimeoutMillis); going on with ${fewer.join(', ')}, the same micro-batches, the same arithmetic`
      : `${lost.join(', ')} replaced after ${waited} ms`;
    emit([
      {
        type: 'log',
        level: 'warn',
        message: `step ${step} failed: ${error.message.split('\n')[0]}; ${what}; restored the commit of step ${commit.step} and replaying ${replay} step${replay === 1 ? '' : 's'} (recovery ${this.restarts} of ${retries})`,
      },
    ]);
    return commit.step;
  }

  /**
   * Waits for the cluster to replace what died, up to the setting's limit. Past it, a job that can
   * go on with fewer workers is told which of its workers are still gone; any other fails.
   */
  private async replaced(millis: number, error: KilnError): Promise<readonly string[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), millis);
    });
    try {
      if ((await Promise.race([this.cluster.settled(this.current), late])) !== 'late') return [];
    } finally {
      clearTimeout(timer);
    }
    const gone = this.cluster.lost().filter((w) => this.current.includes(w));
    if (this.canShrink && gone.length > 0 && gone.length < this.current.length) return gone;
    throw new KilnError(
      'timeout',
      `${error.message.split('\n')[0]}; no replacement worker joined within ${millis} ms (recovery.replaceTimeoutMillis)`,
      { cause: error },
    );
  }
}

/** Where a job's durable commit lives: next to its checkpoints, one file per job. */
export const commitFile = (dir: string, id: string) => join(dir, `job-${id}.commit`);

/**
 * Writes a commit so that a coordinator killed at any moment finds either the previous one or
 * this one, whole: a temporary file, synced to disk, then renamed over the last.
 */
export async function writeCommit(file: string, job: string, commit: Commit): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(
      encodeCheckpoint({
        variables: Object.fromEntries(commit.variables),
        metadata: { job, step: commit.step },
      }),
    );
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}

/** The commit in `file`, or undefined where there is none; a damaged one is a KilnError naming it. */
export async function readCommit(file: string): Promise<Commit | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const checkpoint = decodeCheckpoint(bytes);
    const step = checkpoint.metadata.step;
    if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1)
      throw new KilnError('serialization', 'its step is missing');
    return { step, variables: new Map(Object.entries(checkpoint.variables)) };
  } catch (e) {
    throw new KilnError('serialization', `the job's commit ${file} cannot be read: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Removes a finished job's commit: nothing resumes it any more. */
export const dropCommit = (file: string) => rm(file, { force: true });
