import { existsSync } from 'node:fs';
import { type GraphData, KilnError } from '@kiln/ir';
import { Cause, Effect, Exit, Fiber } from 'effect';
import type { Cluster } from '../cluster/cluster.js';
import { isFinished, type JobEvent, type JobEventBody, type JobInfo } from './job-events.js';
import { jobsToStart, neverFits, type QueuedJob } from './job-queue.js';
import { commitFile } from './job-recovery.js';
import { type JobFailed, type RunOutcome, runJob } from './job-runner.js';
import { type JobSpec, parseJobSpec, workersNeeded } from './job-spec.js';
import type { JobStore } from './job-store.js';
import { decodeJobSpec, encodeJobSpec } from './spec-bytes.js';

/** Why a job that ran when its coordinator closed was stopped: on purpose, so not interrupted. */
const SHUT_DOWN = 'stopped: the coordinator shut down';

/** How long a cancelled job may take to finish its step before that step is cancelled too. */
export const DEFAULT_CANCEL_GRACE_MILLIS = 10_000;

export interface JobServiceOptions {
  readonly cancelGraceMillis?: number;
  /** Where the service says what it does (job started, finished, failed). */
  readonly log?: (line: string) => void;
}

interface Running {
  /** Asks the runner to stop after its step. */
  readonly stop: AbortController;
  /** The run itself: interrupting it is the forced stop. */
  readonly fiber: Fiber.Fiber<RunOutcome, JobFailed>;
  /** Settles once the job's end is stored and its workers are free again. */
  readonly done: Promise<void>;
}

/**
 * The coordinator's jobs: it validates and stores submissions, queues them by the workers they
 * need, runs what fits on the cluster, keeps every event in the store and passes it on to
 * followers, and stops jobs on request. The store is the record: a follower reads history from
 * it, then live events, so nothing a job reported is missed, the last log line included.
 */
export class JobService {
  private readonly queue: (QueuedJob & { spec: JobSpec; graph: GraphData })[] = [];
  private readonly running = new Map<string, Running>();
  private readonly busy = new Set<string>();
  private readonly followers = new Map<string, Set<(e: JobEvent) => void>>();
  private readonly watchers = new Set<(e: JobEvent) => void>();
  private closed = false;

  private constructor(
    readonly store: JobStore,
    private readonly cluster: Cluster,
    /** Worker name -> the device kind it serves. */
    readonly workers: ReadonlyMap<string, string>,
    private readonly options: JobServiceOptions,
  ) {}

  /**
   * Starts the service on a cluster whose workers have started: jobs a previous coordinator left
   * RUNNING are marked interrupted, and its PENDING jobs are queued again in their order.
   */
  static async start(
    store: JobStore,
    cluster: Cluster,
    options: JobServiceOptions = {},
  ): Promise<JobService> {
    const devices = await cluster.planningDevices();
    const workers = new Map(cluster.names.map((name, i) => [name, devices[i]!.kind]));
    const service = new JobService(store, cluster, workers, options);
    for (const job of store.recover((id) => resumable(store, id))) {
      try {
        service.enqueue(job.id, parseJobSpec(decodeJobSpec(store.spec(job.id)!)));
      } catch (e) {
        service.finish(job.id, 'FAILED', {
          reason: `its stored spec no longer loads: ${(e as Error).message}`,
        });
      }
    }
    service.schedule();
    return service;
  }

  /**
   * Validates and stores a job (throwing a KilnError that names every bad field), and queues it.
   * A job that can never run on this cluster is stored as FAILED at once, saying why.
   */
  submit(input: unknown): JobInfo {
    if (this.closed) throw new KilnError('cancelled', 'the job service is closed');
    const parsed = parseJobSpec(input);
    const { spec, graph } = parsed;
    const need = workersNeeded(spec, graph);
    const { job, created } = this.store.submit({
      ...(spec.submissionId !== undefined ? { submissionId: spec.submissionId } : {}),
      name: spec.name,
      kind: spec.kind,
      device: spec.device,
      workersNeeded: need.count,
      spec: encodeJobSpec(spec),
    });
    if (!created) return job;
    this.notify([this.store.events(job.id)[0]!]);
    const why = neverFits({ device: spec.device, ...need }, this.workers);
    if (why) return this.finish(job.id, 'FAILED', { reason: `it can never run here: ${why}` });
    this.enqueue(job.id, parsed);
    this.schedule();
    return this.store.job(job.id)!;
  }

  /**
   * Stops a job: a PENDING one at once; a RUNNING one after its current step, or, past the grace
   * period, by cancelling that step (steps are atomic: a cancelled one changes nothing).
   */
  cancel(id: string): JobInfo {
    const job = this.info(id);
    if (isFinished(job.state)) return job;
    const at = this.queue.findIndex((q) => q.id === id);
    if (at >= 0) {
      this.queue.splice(at, 1);
      return this.finish(id, 'STOPPED', { reason: 'cancelled before it started' });
    }
    const run = this.running.get(id);
    if (run && !run.stop.signal.aborted) {
      run.stop.abort();
      const grace = this.options.cancelGraceMillis ?? DEFAULT_CANCEL_GRACE_MILLIS;
      const timer = setTimeout(() => Effect.runFork(Fiber.interrupt(run.fiber)), grace);
      void run.done.finally(() => clearTimeout(timer));
      this.emit(id, [
        {
          type: 'log',
          level: 'info',
          message: `cancel requested: stopping after the current step (forced in ${grace} ms)`,
        },
      ]);
    }
    return this.info(id);
  }

  /** A job as stored; a KilnError if there is none of that id. */
  info(id: string): JobInfo {
    const job = this.store.job(id);
    if (!job) throw new KilnError('invalid-argument', `no job '${id}'`);
    return job;
  }

  jobs(): JobInfo[] {
    return this.store.jobs();
  }

  /**
   * Calls `listener` with each new event of job `id` until it is removed; returns the remover.
   * Read the stored history after subscribing, so no event falls between the two.
   */
  follow(id: string, listener: (e: JobEvent) => void): () => void {
    let set = this.followers.get(id);
    if (!set) this.followers.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.followers.delete(id);
    };
  }

  /** Calls `listener` with every job's events, submissions included, until it is removed. */
  watch(listener: (e: JobEvent) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  /** Stops every running job (forced at once) and takes no more. The store stays open. */
  async close(): Promise<void> {
    this.closed = true;
    for (const run of this.running.values()) {
      run.stop.abort();
      Effect.runFork(Fiber.interrupt(run.fiber));
    }
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private enqueue(id: string, { spec, graph }: { spec: JobSpec; graph: GraphData }): void {
    const need = workersNeeded(spec, graph);
    this.queue.push({
      id,
      device: spec.device,
      count: need.count,
      ...(need.named ? { named: need.named } : {}),
      spec,
      graph,
    });
  }

  /** Starts every queued job that fits on the free workers. */
  private schedule(): void {
    if (this.closed) return;
    for (const start of jobsToStart(this.queue, this.workers, this.busy)) {
      const at = this.queue.findIndex((q) => q.id === start.id);
      const [job] = this.queue.splice(at, 1);
      this.start(job!, start.workers);
    }
  }

  private start(job: QueuedJob & { spec: JobSpec; graph: GraphData }, workers: string[]): void {
    for (const w of workers) this.busy.add(w);
    this.notify([this.store.transition(job.id, 'RUNNING', { workers })]);
    this.options.log?.(`job ${job.id} (${job.spec.name}) running on ${workers.join(', ')}`);
    const stop = new AbortController();
    const fiber = Effect.runFork(
      runJob(job.spec, job.graph, {
        id: job.id,
        cluster: this.cluster,
        workers,
        emit: (events) => this.emit(job.id, events),
        record: (points) => this.store.recordMetrics(job.id, points),
        stop: stop.signal,
      }),
    );
    const done = new Promise<void>((resolve) => {
      fiber.addObserver((exit) => {
        this.ended(job.id, exit);
        for (const w of workers) this.busy.delete(w);
        this.running.delete(job.id);
        this.schedule();
        resolve();
      });
    });
    this.running.set(job.id, { stop, fiber, done });
  }

  /** Stores how a run ended: its result, its failure, or its interruption (the forced stop). */
  private ended(id: string, exit: Exit.Exit<RunOutcome, JobFailed>): void {
    if (Exit.isSuccess(exit)) {
      const { stopped, result } = exit.value;
      const reason = this.closed ? SHUT_DOWN : `cancelled after step ${result.steps}`;
      this.finish(id, stopped ? 'STOPPED' : 'SUCCEEDED', { result, ...(stopped ? { reason } : {}) });
      return;
    }
    if (Cause.hasInterruptsOnly(exit.cause)) {
      this.finish(id, 'STOPPED', {
        reason: this.closed
          ? SHUT_DOWN
          : 'cancelled: the step in flight was cancelled after the grace period',
      });
      return;
    }
    const failure = Cause.squash(exit.cause);
    const message = failure instanceof Error ? failure.message : String(failure);
    this.emit(id, [{ type: 'log', level: 'error', message }]);
    this.finish(id, 'FAILED', { reason: message });
  }

  private finish(
    id: string,
    state: 'SUCCEEDED' | 'FAILED' | 'STOPPED',
    fields: Parameters<JobStore['transition']>[2],
  ): JobInfo {
    this.notify([this.store.transition(id, state, fields)]);
    this.options.log?.(`job ${id} ${state}${fields?.reason ? `: ${fields.reason}` : ''}`);
    return this.store.job(id)!;
  }

  private emit(id: string, events: readonly JobEventBody[]): void {
    this.notify(this.store.append(id, events));
  }

  private notify(events: readonly JobEvent[]): void {
    for (const e of events) {
      for (const listener of this.followers.get(e.job) ?? []) listener(e);
      for (const watcher of this.watchers) watcher(e);
    }
  }
}

/**
 * Why a job its coordinator was running when it was lost can go on: a training job with a commit
 * on disk (written at its checkpoint steps) resumes from it. Undefined: it cannot.
 */
function resumable(store: JobStore, id: string): string | undefined {
  try {
    const { spec } = parseJobSpec(decodeJobSpec(store.spec(id)!));
    if (spec.kind !== 'train' || !spec.checkpoint) return undefined;
    const file = commitFile(spec.checkpoint.dir, id);
    return existsSync(file)
      ? `the coordinator was lost while the job ran; queued again to resume from its commit ${file}`
      : undefined;
  } catch {
    return undefined;
  }
}
