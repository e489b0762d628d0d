import type { JobInfo, JobState } from '../jobs/job-events.js';

/** One job's time on one worker. */
export interface Span {
  readonly job: string;
  readonly name: string;
  readonly state: JobState;
  /** Milliseconds since the epoch. */
  readonly start: number;
  /** Null while it still runs: it reaches up to `now`. */
  readonly end: number | null;
}

/** Which worker ran what when: one lane per worker, its spans in start order. */
export interface Timeline {
  /** The window shown: the first start among the spans, and now. */
  readonly from: number;
  readonly to: number;
  readonly lanes: readonly { readonly worker: string; readonly spans: readonly Span[] }[];
}

/** How many of the latest started jobs a timeline shows, so an old coordinator's stays readable. */
export const TIMELINE_JOBS = 50;

/**
 * The timeline of the `limit` jobs that started last, from what the store keeps of each (its
 * workers, when it started and ended). A job holds its workers for the whole of its run, so one
 * span per worker it held is the truth, not an approximation. Workers that ran nothing get an
 * empty lane: an idle worker is worth seeing too.
 */
export function workerTimeline(
  jobs: readonly JobInfo[],
  workers: readonly string[],
  now: number,
  limit = TIMELINE_JOBS,
): Timeline {
  const started = jobs
    .filter((j): j is JobInfo & { startedAt: number } => j.startedAt !== undefined)
    .sort((a, b) => a.startedAt - b.startedAt)
    .slice(-limit);
  const lanes = new Map<string, Span[]>(workers.map((w) => [w, []]));
  for (const job of started)
    for (const worker of job.workers) {
      let lane = lanes.get(worker);
      // A worker name no longer in the cluster (a store from a larger one) still has its history.
      if (!lane) lanes.set(worker, (lane = []));
      lane.push({
        job: job.id,
        name: job.name,
        state: job.state,
        start: job.startedAt,
        end: job.endedAt ?? null,
      });
    }
  return {
    from: started[0]?.startedAt ?? now,
    to: now,
    lanes: [...lanes].map(([worker, spans]) => ({ worker, spans })),
  };
}
