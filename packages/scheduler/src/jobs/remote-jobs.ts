import { KilnError, type KilnErrorCode } from '@kiln/ir';
import { type DialOptions, dial } from '../net/dial.js';
import { FrameLink } from '../net/link.js';
import { type NetLog, stderrLog } from '../net/log.js';
import { greet } from '../net/welcome.js';
import type { JobEvent, JobInfo } from './job-events.js';
import type { JobSpecInput } from './job-spec.js';
import { parseJobSpec } from './job-spec.js';
import { type EventsFrom, Jobs, type JobsBackend } from './jobs-api.js';
import {
  decodeFromJobs,
  encodeJobsFrame,
  type FromJobs,
  JOBS_PATH,
  JOBS_PROTOCOL_VERSION,
  type ToJobs,
} from './jobs-protocol.js';
import { encodeJobSpec } from './spec-bytes.js';

export interface ConnectJobsOptions extends DialOptions {
  readonly log?: NetLog;
  readonly heartbeatMillis?: number;
}

type Reply = Exclude<FromJobs, { t: 'welcome' | 'event' | 'end' }>;

/** A follow's stream on the client: events queue here until the iterator takes them. */
interface Follow {
  push(m: Extract<FromJobs, { t: 'event' | 'end' | 'error' }>): void;
}

/**
 * Jobs on a standalone coordinator (`kiln coordinator`), reached over its port at the jobs path:
 * the same Jobs API as an embedded cluster. The spec is checked here first, so a bad field is
 * named without a round trip, and again by the coordinator.
 */
export async function connectJobs(url: string, options: ConnectJobsOptions = {}): Promise<Jobs> {
  return new Jobs(await RemoteJobs.connect(url, options));
}

export class RemoteJobs implements JobsBackend {
  private readonly pending = new Map<number, { resolve(m: Reply): void; reject(e: KilnError): void }>();
  private readonly follows = new Map<number, Follow>();
  private nextId = 1;
  private lost: string | null = null;

  private constructor(
    private readonly link: FrameLink<FromJobs, ToJobs>,
    readonly url: string,
  ) {
    link.onMessage((m) => {
      if (m.t === 'welcome') return;
      const follow = this.follows.get(m.id);
      if (follow && (m.t === 'event' || m.t === 'end' || m.t === 'error')) return follow.push(m);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m as Reply);
    });
    link.onClose((reason) => {
      this.lost = reason;
      const error = new KilnError('worker', `lost the coordinator at ${url}: ${reason}`);
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
      for (const f of this.follows.values())
        f.push({ t: 'error', id: 0, code: 'worker', message: error.message });
    });
  }

  static async connect(url: string, options: ConnectJobsOptions = {}): Promise<RemoteJobs> {
    const log = options.log ?? stderrLog;
    const link = await dial(
      `${url.replace(/\/+$/, '')}${JOBS_PATH}`,
      options,
      (ws) =>
        new FrameLink<FromJobs, ToJobs>(ws, encodeJobsFrame, {
          peer: `coordinator at ${url}`,
          decode: (frame) => decodeFromJobs(frame, options.maxFrameBytes),
          ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
          log,
          ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        }),
    );
    await greet(link, { t: 'hello', version: JOBS_PROTOCOL_VERSION }, url, options.timeoutMillis);
    return new RemoteJobs(link, url);
  }

  async submit(input: JobSpecInput): Promise<JobInfo> {
    const { spec } = parseJobSpec(input);
    return this.job(await this.call((id) => ({ t: 'submit', id, spec: encodeJobSpec(spec) })));
  }

  async info(job: string): Promise<JobInfo> {
    return this.job(await this.call((id) => ({ t: 'info', id, job })));
  }

  async list(): Promise<JobInfo[]> {
    const reply = await this.call((id) => ({ t: 'list', id }));
    if (reply.t !== 'jobs') throw unexpected(reply);
    return [...reply.jobs];
  }

  async cancel(job: string): Promise<JobInfo> {
    return this.job(await this.call((id) => ({ t: 'cancel', id, job })));
  }

  async metric(job: string, name: string): Promise<[number, number][]> {
    const reply = await this.call((id) => ({ t: 'metric', id, job, name }));
    if (reply.t !== 'metric') throw unexpected(reply);
    return reply.points.map(([s, v]) => [s, v]);
  }

  async *events(job: string, from: EventsFrom, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    if (this.lost) throw new KilnError('worker', `lost the coordinator at ${this.url}: ${this.lost}`);
    const id = this.nextId++;
    const queue: Extract<FromJobs, { t: 'event' | 'end' | 'error' }>[] = [];
    let wake: (() => void) | undefined;
    this.follows.set(id, {
      push: (m) => {
        queue.push(m);
        wake?.();
      },
    });
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort);
    let ended = false;
    try {
      void this.link.send({ t: 'follow', id, job, from }).catch(() => undefined);
      while (!signal?.aborted) {
        const m = queue.shift();
        if (!m) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        if (m.t === 'end') {
          ended = true;
          return;
        }
        if (m.t === 'error') {
          ended = true;
          throw new KilnError(m.code, m.message);
        }
        yield m.event;
      }
    } finally {
      this.follows.delete(id);
      signal?.removeEventListener('abort', onAbort);
      if (!ended && !this.lost) void this.link.send({ t: 'unfollow', id }).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.link.close('client closed', 1000);
  }

  private job(reply: Reply): JobInfo {
    if (reply.t !== 'job') throw unexpected(reply);
    return reply.job;
  }

  private call(make: (id: number) => ToJobs): Promise<Reply> {
    if (this.lost)
      return Promise.reject(new KilnError('worker', `lost the coordinator at ${this.url}: ${this.lost}`));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (m) =>
          m.t === 'error' ? reject(new KilnError(m.code as KilnErrorCode, m.message)) : resolve(m),
        reject,
      });
      void this.link.send(make(id)).catch(() => undefined);
    });
  }
}

const unexpected = (m: FromJobs) =>
  new KilnError('protocol', `the coordinator answered '${m.t}' unexpectedly`);
