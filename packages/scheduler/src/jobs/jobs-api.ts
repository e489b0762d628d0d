import { KilnError } from '@kiln/ir';
import { isFinished, type JobEvent, type JobInfo, type JobResult } from './job-events.js';
import type { JobSpecInput } from './job-spec.js';

/** Where a follower starts: the job's first event, the next one from now, or after a seq. */
export type EventsFrom = 'start' | 'now' | number;

/**
 * What the handles need from a coordinator, in this process (LocalJobs) or behind a socket
 * (RemoteJobs): the job service as calls.
 */
export interface JobsBackend {
  submit(spec: JobSpecInput): Promise<JobInfo>;
  info(id: string): Promise<JobInfo>;
  list(): Promise<JobInfo[]>;
  cancel(id: string): Promise<JobInfo>;
  /** The job's events from `from` until it ends (the terminal state event is the last). */
  events(id: string, from: EventsFrom, signal?: AbortSignal): AsyncIterable<JobEvent>;
  /** Per-step values of one metric (the loss curve). */
  metric(id: string, name: string): Promise<[step: number, value: number][]>;
  close(): Promise<void>;
}

/** Submit, list and follow jobs: the same for an embedded cluster and a remote coordinator. */
export class Jobs {
  constructor(private readonly backend: JobsBackend) {}

  /**
   * Submits a job spec (data: see JobSpec) and returns its handle. A spec with the
   * `submissionId` of an earlier submit returns that job's handle instead of a second job.
   * Throws a KilnError naming each bad field.
   */
  async submit(spec: JobSpecInput): Promise<JobHandle> {
    const info = await this.backend.submit(spec);
    return new JobHandle(info.id, this.backend);
  }

  /** The handle of a job by id (it need not have been submitted from here). */
  job(id: string): JobHandle {
    return new JobHandle(id, this.backend);
  }

  /** Every job the coordinator has, oldest first. */
  list(): Promise<JobInfo[]> {
    return this.backend.list();
  }

  /** Lets go of the coordinator (and for an embedded cluster, stops it). */
  close(): Promise<void> {
    return this.backend.close();
  }
}

/** One job: its state, its events as they happen, its result, and a way to stop it. */
export class JobHandle {
  constructor(
    readonly id: string,
    private readonly backend: JobsBackend,
  ) {}

  status(): Promise<JobInfo> {
    return this.backend.info(this.id);
  }

  /**
   * The job's events (state changes, progress with the report metrics, log lines) as an async iterable that ends
   * with the job. `from: 'start'` (the default) replays its history first; `'now'` follows only
   * what comes next; a number resumes after that sequence number.
   */
  events(options: { from?: EventsFrom; signal?: AbortSignal } = {}): AsyncIterable<JobEvent> {
    return this.backend.events(this.id, options.from ?? 'start', options.signal);
  }

  /** Waits for the job to end; its result if it SUCCEEDED, else a KilnError saying how it ended. */
  async result(): Promise<JobResult> {
    for await (const _ of this.backend.events(this.id, 'now')) {
      // Only the end matters here.
    }
    const info = await this.backend.info(this.id);
    if (info.state === 'SUCCEEDED' && info.result) return info.result;
    throw new KilnError(
      info.state === 'STOPPED' ? 'cancelled' : 'runtime',
      `job ${this.id} (${info.name}) ${info.state}${info.reason ? `: ${info.reason}` : ''}`,
    );
  }

  /** Asks the job to stop: a PENDING one at once, a RUNNING one after its step (forced later). */
  cancel(): Promise<JobInfo> {
    return this.backend.cancel(this.id);
  }

  /** Per-step values of a metric, `loss` among them. */
  metric(name: string): Promise<[step: number, value: number][]> {
    return this.backend.metric(this.id, name);
  }
}

/** Does this event end the job's history? */
export const isLastEvent = (e: JobEvent): boolean => e.type === 'state' && isFinished(e.state);
