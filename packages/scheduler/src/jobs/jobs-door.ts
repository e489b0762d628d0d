import { KilnError } from '@kiln/ir';
import type { FrameLink } from '../net/link.js';
import type { NetLog } from '../net/log.js';
import type { JobService } from './job-service.js';
import { type FromJobs, JOBS_PROTOCOL_VERSION, type ToJobs } from './jobs-protocol.js';
import { followJob } from './local-jobs.js';
import { decodeJobSpec } from './spec-bytes.js';

/** How many jobs one client may follow at once. */
export const MAX_FOLLOWS = 256;

/**
 * Serves one jobs client of a coordinator: each request becomes a call on the job service and
 * its answer (or its KilnError's code and message) a message back; each follow streams the job's
 * events until the job ends, the client unfollows, or it leaves. A refused request leaves the
 * connection up; a malformed message (caught by the link's decoder) closes it.
 */
export class JobsDoor {
  private readonly follows = new Map<number, AbortController>();
  private greeted = false;

  constructor(
    private readonly link: FrameLink<ToJobs, FromJobs>,
    private readonly service: JobService,
    private readonly log: NetLog,
  ) {
    link.onMessage((m) => this.receive(m));
    link.onClose(() => {
      for (const f of this.follows.values()) f.abort();
      this.follows.clear();
    });
  }

  private receive(m: ToJobs): void {
    if (!this.greeted) {
      if (m.t !== 'hello' || m.version !== JOBS_PROTOCOL_VERSION) {
        this.link.close(
          m.t === 'hello'
            ? `jobs protocol version ${m.version} is not ${JOBS_PROTOCOL_VERSION}`
            : `expected hello, got '${m.t}'`,
          1002,
        );
        return;
      }
      this.greeted = true;
      this.send({ t: 'welcome', version: JOBS_PROTOCOL_VERSION });
      return;
    }
    try {
      const reply = this.answer(m);
      if (reply) this.send(reply);
    } catch (e) {
      this.refuse((m as { id: number }).id, e);
    }
  }

  /** The reply to a request, if it has one (a follow answers with its stream). */
  private answer(m: ToJobs): FromJobs | undefined {
    switch (m.t) {
      case 'hello':
        return undefined;
      case 'submit':
        return { t: 'job', id: m.id, job: this.service.submit(decodeJobSpec(m.spec)) };
      case 'list':
        return { t: 'jobs', id: m.id, jobs: this.service.jobs() };
      case 'info':
        return { t: 'job', id: m.id, job: this.service.info(m.job) };
      case 'cancel':
        return { t: 'job', id: m.id, job: this.service.cancel(m.job) };
      case 'metric':
        this.service.info(m.job);
        return { t: 'metric', id: m.id, points: this.service.store.metric(m.job, m.name) };
      case 'follow':
        this.follow(m.id, m.job, m.from);
        return undefined;
      case 'unfollow':
        this.follows.get(m.id)?.abort();
        return undefined;
    }
  }

  private follow(id: number, job: string, from: Extract<ToJobs, { t: 'follow' }>['from']): void {
    if (this.follows.size >= MAX_FOLLOWS)
      throw new KilnError('limit', `more than ${MAX_FOLLOWS} jobs followed by one client`);
    this.service.info(job);
    const stop = new AbortController();
    this.follows.set(id, stop);
    void (async () => {
      try {
        for await (const event of followJob(this.service, job, from, stop.signal))
          this.send({ t: 'event', id, event });
        this.send({ t: 'end', id });
      } catch (e) {
        this.refuse(id, e);
      } finally {
        this.follows.delete(id);
      }
    })();
  }

  private refuse(id: number, e: unknown): void {
    const code = e instanceof KilnError ? e.code : 'runtime';
    const message = e instanceof Error ? e.message : String(e);
    if (!(e instanceof KilnError)) this.log(`jobs: unexpected failure answering request ${id}: ${message}`);
    this.send({ t: 'error', id, code, message });
  }

  private send(m: FromJobs): void {
    void this.link.send(m).catch(() => undefined);
  }
}
