/** A job's states. PENDING and RUNNING are live; the other three are how it ended. */
export type JobState = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'STOPPED';

export const JOB_STATES: readonly JobState[] = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];

export const isFinished = (state: JobState): boolean =>
  state === 'SUCCEEDED' || state === 'FAILED' || state === 'STOPPED';

/** Where a training job is: sent with every progress event and kept as the job's latest. */
export interface JobProgress {
  readonly step: number;
  readonly steps: number;
  readonly epoch: number;
  /** The loss of the latest step. */
  readonly loss: number;
  readonly samplesPerSecond: number;
  /** Seconds left at the current speed. */
  readonly etaSeconds: number;
  /** The `report` outputs at the latest step. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** What happened to a job, in order; kept in the job store with a sequence number. */
export type JobEventBody =
  | {
      readonly type: 'state';
      readonly state: JobState;
      readonly reason?: string;
      readonly workers?: readonly string[];
    }
  | ({ readonly type: 'progress' } & JobProgress)
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly message: string };

export type JobEvent = JobEventBody & {
  readonly job: string;
  /** 1, 2, ...: a follower resumes after the last one it saw. */
  readonly seq: number;
  /** Milliseconds since the epoch. */
  readonly at: number;
};

/** How a job ended well: its final metrics and where its weights are. */
export interface JobResult {
  /** The evaluation's means, the final loss, and for `run` jobs the fetched scalars. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly steps: number;
  readonly seconds: number;
  /** The final checkpoint's file, when the job has a checkpoint policy. */
  readonly checkpoint?: string;
  /** A `run` job's fetches, by output name. */
  readonly fetches?: Readonly<Record<string, { dtype: string; shape: number[]; data: number[] }>>;
}

/** A job as listed: what it is, where it is, how it ended. */
export interface JobInfo {
  readonly id: string;
  readonly submissionId?: string;
  readonly name: string;
  readonly kind: 'train' | 'run';
  readonly state: JobState;
  readonly device: string;
  /** How many workers it holds while running. */
  readonly workersNeeded: number;
  /** The workers it ran on, once started. */
  readonly workers: readonly string[];
  readonly submittedAt: number;
  readonly startedAt?: number;
  readonly endedAt?: number;
  /** Why it failed or stopped. */
  readonly reason?: string;
  /** It was RUNNING when its coordinator stopped, and did not finish. */
  readonly interrupted: boolean;
  readonly progress?: JobProgress;
  readonly result?: JobResult;
  /** How many events it has: the sequence number of the latest. */
  readonly events: number;
}
