import type { JobEvent, JobEventBody, JobInfo, JobResult, JobState } from './job-events.js';

/** What submit stores: the job as listed, less what only the store assigns. */
export interface NewJob {
  readonly submissionId?: string;
  readonly name: string;
  readonly kind: 'train' | 'run';
  readonly device: string;
  readonly workersNeeded: number;
  /** The encoded job spec (encodeJobSpec), kept so a restarted coordinator can run it. */
  readonly spec: Uint8Array;
}

/** Fields a transition sets alongside the new state. */
export interface TransitionFields {
  readonly workers?: readonly string[];
  readonly reason?: string;
  readonly result?: JobResult;
}

/**
 * Where jobs, their events and their metrics are kept. Every method is one transaction: a submit
 * that returned is stored, a transition and its event are stored together or not at all.
 * SqliteJobStore is the implementation; the interface keeps the job service free of SQL.
 */
export interface JobStore {
  /** Stores a PENDING job; with a submission id already stored, returns that job instead. */
  submit(job: NewJob): { job: JobInfo; created: boolean };
  /** Moves a job to `state` and appends the state event. */
  transition(id: string, state: JobState, fields?: TransitionFields): JobEvent;
  /** Appends events (progress, logs); progress also becomes the job's latest. */
  append(id: string, events: readonly JobEventBody[]): JobEvent[];
  /** Keeps per-step values (the loss curve): name -> [step, value] pairs. */
  recordMetrics(id: string, points: readonly (readonly [step: number, name: string, value: number])[]): void;
  job(id: string): JobInfo | undefined;
  /** Every job, oldest first. */
  jobs(): JobInfo[];
  /** The job's spec as submitted (encoded). */
  spec(id: string): Uint8Array | undefined;
  /** A job's events after sequence number `after` (0: from the start), oldest first. */
  events(id: string, after?: number, limit?: number): JobEvent[];
  /** A job's per-step values of one metric, in step order. */
  metric(id: string, name: string): [step: number, value: number][];
  /**
   * After a restart: each job left RUNNING is queued again where `resumes` says why it can go on
   * (a commit on disk to resume from), and becomes FAILED and interrupted otherwise; returns the
   * PENDING jobs, oldest first, to queue again.
   */
  recover(resumes?: (id: string) => string | undefined): JobInfo[];
  close(): void;
}
