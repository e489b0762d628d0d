import type { Cluster } from '../cluster/cluster.js';
import { isFinished, type JobState } from '../jobs/job-events.js';
import type { JobService } from '../jobs/job-service.js';

/**
 * What the page is told when something changed: which job and what kind of event, or that the
 * workers changed. Only a nudge: the page fetches the state itself, so a dropped or coalesced
 * nudge costs nothing but a moment.
 */
export interface Change {
  readonly type: 'submitted' | 'state' | 'progress' | 'metrics' | 'log' | 'workers';
  readonly job?: string;
  readonly state?: JobState;
}

/** How often the feed looks for new jobs and replaced workers while anyone is watching. */
export const POLL_MILLIS = 1000;

/**
 * Job and worker changes, for the dashboard's event stream. The job service tells events per job
 * (`follow`) but has no "a job was submitted" hook, so the feed lists the jobs once a second,
 * follows each live one it has not seen, and says so; from then on its events arrive as they
 * happen. Worker replacements show as a changed generation. It works only while someone listens:
 * no page open, no timer and no followers.
 */
export class LiveFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly following = new Map<string, () => void>();
  private readonly seen = new Set<string>();
  private generations = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly service: JobService,
    private readonly cluster: Cluster,
    private readonly pollMillis = POLL_MILLIS,
  ) {}

  /** Calls `listener` with each change until the returned function is called. */
  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start();
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) this.stop();
    };
  }

  /** Lets go of every listener and follower. */
  close(): void {
    this.listeners.clear();
    this.stop();
  }

  private start(): void {
    // What exists now is the page's first fetch; only what comes after is news.
    this.poll(false);
    this.timer = setInterval(() => this.poll(true), this.pollMillis);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const unfollow of this.following.values()) unfollow();
    this.following.clear();
    this.seen.clear();
    this.generations = '';
  }

  private poll(tell: boolean): void {
    for (const job of this.service.jobs()) {
      const fresh = !this.seen.has(job.id);
      this.seen.add(job.id);
      if (fresh && tell) this.tell({ type: 'submitted', job: job.id, state: job.state });
      if (!isFinished(job.state) && !this.following.has(job.id)) this.follow(job.id);
    }
    const generations = this.cluster.names.map((n) => this.cluster.generation(n)).join(',');
    if (tell && generations !== this.generations) this.tell({ type: 'workers' });
    this.generations = generations;
  }

  private follow(id: string): void {
    const unfollow = this.service.follow(id, (e) => {
      this.tell({ type: e.type, job: id, ...(e.type === 'state' ? { state: e.state } : {}) });
      if (e.type === 'state' && isFinished(e.state)) {
        unfollow();
        this.following.delete(id);
      }
    });
    this.following.set(id, unfollow);
    // It may have ended between the listing and the follow: its end would never come.
    const { state } = this.service.info(id);
    if (isFinished(state)) {
      unfollow();
      this.following.delete(id);
      this.tell({ type: 'state', job: id, state });
    }
  }

  /** Listeners run inside the job service's event delivery: none of them may throw into it. */
  private tell(change: Change): void {
    for (const listener of this.listeners)
      try {
        listener(change);
      } catch {
        // A page that went away mid-write is the stream's business, not the job's.
      }
  }
}
