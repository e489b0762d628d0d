import type { Cluster } from '../cluster/cluster.js';
import { isFinished, type JobEvent, type JobInfo } from './job-events.js';
import type { JobService } from './job-service.js';
import type { JobSpecInput } from './job-spec.js';
import { type EventsFrom, isLastEvent, type JobsBackend } from './jobs-api.js';

/** The job service of this process as a JobsBackend; `close` also ends what it was given to own. */
export class LocalJobs implements JobsBackend {
  constructor(
    readonly service: JobService,
    private readonly owned: { cluster?: Cluster; closeStore?: boolean } = {},
  ) {}

  async submit(spec: JobSpecInput): Promise<JobInfo> {
    return this.service.submit(spec);
  }

  async info(id: string): Promise<JobInfo> {
    return this.service.info(id);
  }

  async list(): Promise<JobInfo[]> {
    return this.service.jobs();
  }

  async cancel(id: string): Promise<JobInfo> {
    return this.service.cancel(id);
  }

  async metric(id: string, name: string): Promise<[number, number][]> {
    this.service.info(id);
    return this.service.store.metric(id, name);
  }

  events(id: string, from: EventsFrom, signal?: AbortSignal): AsyncIterable<JobEvent> {
    return followJob(this.service, id, from, signal);
  }

  async close(): Promise<void> {
    await this.service.close();
    if (this.owned.cluster) await this.owned.cluster.close();
    if (this.owned.closeStore) this.service.store.close();
  }
}

/**
 * A job's events from the store, then live: it subscribes before reading history, so an event
 * that arrives in between is in one or the other, and drops what it already gave by seq.
 */
export async function* followJob(
  service: JobService,
  id: string,
  from: EventsFrom,
  signal?: AbortSignal,
): AsyncGenerator<JobEvent> {
  const live: JobEvent[] = [];
  let wake: (() => void) | undefined;
  const unfollow = service.follow(id, (e) => {
    live.push(e);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    const info = service.info(id);
    let last = from === 'start' ? 0 : from === 'now' ? info.events : from;
    for (;;) {
      const page = service.store.events(id, last, 1000);
      for (const e of page) {
        yield e;
        last = e.seq;
        if (isLastEvent(e)) return;
      }
      if (page.length < 1000) break;
    }
    // Following from now a job that already ended: there is nothing to wait for.
    if (service.info(id).events <= last && isFinished(service.info(id).state)) return;
    while (!signal?.aborted) {
      const e = live.shift();
      if (!e) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (e.seq <= last) continue;
      yield e;
      last = e.seq;
      if (isLastEvent(e)) return;
    }
  } finally {
    unfollow();
    signal?.removeEventListener('abort', onAbort);
  }
}
