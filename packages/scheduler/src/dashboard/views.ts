import type { Cluster } from '../cluster/cluster.js';
import type { JobInfo, JobProgress, JobState } from '../jobs/job-events.js';
import type { JobService } from '../jobs/job-service.js';
import { jobPlacement, type Placement } from './placement.js';
import { type Timeline, workerTimeline } from './timeline.js';
import { type WorkerHealth, workerHealth } from './worker-health.js';

/** A job as the dashboard lists it: the stored info less its bulky result (fetched tensors). */
export interface JobSummary {
  readonly id: string;
  readonly name: string;
  readonly kind: 'train' | 'run';
  readonly state: JobState;
  readonly device: string;
  readonly workers: readonly string[];
  readonly submittedAt: number;
  readonly startedAt: number | null;
  readonly endedAt: number | null;
  readonly reason: string | null;
  readonly interrupted: boolean;
  /** The latest progress it told (every half second or so while it runs). */
  readonly progress: JobProgress | null;
  /** How it ended, less any fetched tensors: its steps, seconds and final metrics. */
  readonly result: {
    readonly steps: number;
    readonly seconds: number;
    readonly metrics: Readonly<Record<string, number>>;
  } | null;
}

export interface WorkerView extends WorkerHealth {
  readonly name: string;
  /** The device kind it serves ('cpu', 'webgpu', ...). */
  readonly device: string;
  /** The job holding it now, if any. */
  readonly running: { readonly id: string; readonly name: string } | null;
}

/** GET /api/overview: the workers and the latest jobs. */
export interface Overview {
  readonly now: number;
  readonly workers: readonly WorkerView[];
  /** The latest OVERVIEW_JOBS jobs, newest first. */
  readonly jobs: readonly JobSummary[];
  /** How many jobs the store has in all. */
  readonly total: number;
}

/** GET /api/jobs/:id: one job, its loss curve, where it runs and what ran around it. */
export interface JobDetail {
  readonly now: number;
  readonly job: JobSummary;
  /** [step, loss] points, thinned to at most CURVE_POINTS. */
  readonly loss: readonly (readonly [number, number])[];
  readonly placement: Placement;
  readonly timeline: Timeline;
  /** Its latest log lines and state changes, oldest first. */
  readonly log: readonly { readonly at: number; readonly level: string; readonly message: string }[];
}

/** A page with thousands of rows helps nobody; the CLI lists them all. */
export const OVERVIEW_JOBS = 100;
/** More points than a chart has pixels across only costs bytes. */
export const CURVE_POINTS = 1000;
/** How far back a job's log is searched (events, progress ones included) and how much is shown. */
const LOG_EVENTS = 400;
const LOG_LINES = 30;

export function summary(job: JobInfo): JobSummary {
  return {
    id: job.id,
    name: job.name,
    kind: job.kind,
    state: job.state,
    device: job.device,
    workers: job.workers,
    submittedAt: job.submittedAt,
    startedAt: job.startedAt ?? null,
    endedAt: job.endedAt ?? null,
    reason: job.reason ?? null,
    interrupted: job.interrupted,
    progress: job.progress ?? null,
    result: job.result
      ? { steps: job.result.steps, seconds: job.result.seconds, metrics: job.result.metrics }
      : null,
  };
}

export async function overview(service: JobService, cluster: Cluster): Promise<Overview> {
  const jobs = service.jobs();
  const holder = new Map<string, JobInfo>();
  for (const job of jobs) if (job.state === 'RUNNING') for (const w of job.workers) holder.set(w, job);
  const workers = await Promise.all(
    cluster.names.map(async (name): Promise<WorkerView> => {
      const job = holder.get(name);
      return {
        name,
        device: service.workers.get(name) ?? '?',
        ...(await workerHealth(cluster, name)),
        running: job ? { id: job.id, name: job.name } : null,
      };
    }),
  );
  return {
    now: Date.now(),
    workers,
    jobs: jobs.slice(-OVERVIEW_JOBS).reverse().map(summary),
    total: jobs.length,
  };
}

/** One job's detail; throws the service's KilnError if there is no such job. */
export async function jobDetail(service: JobService, cluster: Cluster, id: string): Promise<JobDetail> {
  const job = service.info(id);
  const now = Date.now();
  return {
    now,
    job: summary(job),
    loss: thin(service.store.metric(id, 'loss'), CURVE_POINTS),
    placement: await jobPlacement(cluster, job, service.workers),
    timeline: workerTimeline(service.jobs(), cluster.names, now),
    log: service.store
      .events(id, Math.max(0, job.events - LOG_EVENTS), LOG_EVENTS)
      .flatMap((e) =>
        e.type === 'log'
          ? [{ at: e.at, level: e.level, message: e.message }]
          : e.type === 'state'
            ? [{ at: e.at, level: 'state', message: e.state + (e.reason ? `: ${e.reason}` : '') }]
            : [],
      )
      .slice(-LOG_LINES),
  };
}

/**
 * At most `max` of the points, evenly strided, the last always kept (it is the loss now). A curve
 * of a million steps keeps its shape at a thousand points; its noise is what thinning drops.
 */
export function thin<T>(points: readonly T[], max: number): T[] {
  if (points.length <= max) return [...points];
  // One place is kept for the last point.
  const stride = Math.ceil(points.length / Math.max(1, max - 1));
  const out = points.filter((_, i) => i % stride === 0);
  if ((points.length - 1) % stride !== 0) out.push(points[points.length - 1]!);
  return out;
}
