import type { Cluster } from '../cluster/cluster.js';
import type { JobState } from '../jobs/job-events.js';
import type { JobService } from '../jobs/job-service.js';

/**
 * What the page is told when something changed: which job and what kind of event, or that the
 * workers changed. Only a nudge: the page fetches the state itself, so a dropped or coalesced
 * nudge costs nothing but a moment.
 */
export interface Change {
  readonly type: 'submitted' | 'state' | 'progress' | 'log' | 'workers';
  readonly job?: string;
  readonly state?: JobState;
}

/** How often the feed looks for replaced workers while anyone is watching. */
export const POLL_MILLIS = 1000;

/**
 * Job and worker changes, for the dashboard's event stream. Job events come from the job service
 * as they happen (`watch`); a worker's replacement shows as a changed generation, looked for once
 * a second. It works only while someone listens: no page open, no timer and no watch.
 */
export class LiveFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  private unwatch: (() => void) | null = null;
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

  /** Lets go of every listener. */
  close(): void {
    this.listeners.clear();
    this.stop();
  }

  private start(): void {
    // A job's first event is its PENDING state: the news that it was submitted.
    this.unwatch = this.service.watch((e) =>
      this.tell(
        e.type === 'state'
          ? { type: e.seq === 1 ? 'submitted' : 'state', job: e.job, state: e.state }
          : { type: e.type, job: e.job },
      ),
    );
    this.generations = this.workerGenerations();
    this.timer = setInterval(() => {
      const generations = this.workerGenerations();
      if (generations !== this.generations) this.tell({ type: 'workers' });
      this.generations = generations;
    }, this.pollMillis);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unwatch?.();
    this.unwatch = null;
  }

  private workerGenerations(): string {
    return this.cluster.names.map((n) => this.cluster.generation(n)).join(',');
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
