import { type Device, KilnError } from '@kiln/ir';
import { type DialOptions, dial } from '../net/dial.js';
import { FrameLink } from '../net/link.js';
import { type NetLog, stderrLog } from '../net/log.js';
import { greet } from '../net/welcome.js';
import { CapabilityDevice } from './capabilities.js';
import {
  CLIENT_PATH,
  CLIENT_PROTOCOL_VERSION,
  type ClusterState,
  decodeFromCoordinator,
  encodeClientFrame,
  type FromCoordinator,
  type LinkTraffic,
  type ToCoordinator,
} from './client-protocol.js';
import type { Cluster, RequestBody } from './cluster.js';
import { answered } from './errors.js';
import type { PlacementRecord } from './placement-record.js';
import type { FromWorker, WireTensor } from './protocol.js';
import type { ScheduledPartition } from './run-scheduler.js';
import type { StoryEntry } from './story.js';
import { badTimeout, type ExecuteOptions } from './worker-pool.js';

export interface ConnectOptions extends DialOptions {
  /** Ping interval; the coordinator is taken for gone after 3 missed. Default 500 ms. */
  readonly heartbeatMillis?: number;
  readonly log?: NetLog;
}

type Reply = Exclude<FromCoordinator, { t: 'welcome' }>;

/**
 * A cluster run by a standalone coordinator (`kiln coordinator`), as a program in another
 * process or on another machine uses it: the same Cluster a ThreadPool or a RemoteCluster is, so
 * a ClusterSession runs on it unchanged. Each call is a message to the coordinator; what the
 * interface asks synchronously (generations, variable homes) is answered from the state the
 * coordinator sent last, which `settled()` (called before every run) refreshes.
 */
export class ClusterClient implements Cluster {
  private readonly pending = new Map<number, { resolve(m: Reply): void; reject(e: KilnError): void }>();
  private nextId = 0;
  private nextPlan = 0;
  private state: ClusterState;
  private readonly localHomes = new Map<string, string>();
  private lostReason: string | null = null;

  private constructor(
    private readonly link: FrameLink<FromCoordinator, ToCoordinator>,
    readonly url: string,
    readonly names: readonly string[],
    private readonly client: number,
    state: ClusterState,
  ) {
    this.state = state;
    link.onMessage((m) => {
      if (m.t === 'welcome') return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
    });
    link.onClose((reason) => {
      this.lostReason = reason;
      for (const p of this.pending.values())
        p.reject(new KilnError('worker', `lost the coordinator at ${url}: ${reason}`));
      this.pending.clear();
    });
  }

  static async connect(url: string, options: ConnectOptions = {}): Promise<ClusterClient> {
    const log = options.log ?? stderrLog;
    const link = await dial(
      `${url.replace(/\/+$/, '')}${CLIENT_PATH}`,
      options,
      (ws) =>
        new FrameLink<FromCoordinator, ToCoordinator>(ws, encodeClientFrame, {
          peer: `coordinator at ${url}`,
          decode: (frame) => decodeFromCoordinator(frame, options.maxFrameBytes),
          ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
          log,
          ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        }),
    );
    const welcome = await greet(
      link,
      { t: 'hello', version: CLIENT_PROTOCOL_VERSION },
      url,
      options.timeoutMillis,
    );
    return new ClusterClient(link, url, welcome.names, welcome.client, welcome.state);
  }

  /** A client waits for every worker's replacement (the coordinator settles them all). */
  async planningDevices(): Promise<Device[]> {
    await this.settled();
    return this.state.devices.map((d) => new CapabilityDevice(d));
  }

  async request(worker: string, body: RequestBody, what: string): Promise<FromWorker> {
    const reply = await this.call((id) => ({ t: 'request', id, worker, what, body }));
    if (reply.t !== 'answer') throw unexpected(reply);
    return answered(worker, what, reply.message);
  }

  async execute(
    partitions: readonly ScheduledPartition[],
    fetchCount: number,
    runs: readonly ReadonlyMap<string, WireTensor>[],
    options: ExecuteOptions = {},
  ): Promise<WireTensor[][]> {
    const millis = options.timeoutMillis;
    // Checked here: the coordinator would take a malformed request for a broken client.
    const bad = badTimeout(millis);
    if (bad) throw bad;
    const reply = await this.call(
      (id) => ({
        t: 'execute',
        id,
        partitions,
        fetchCount,
        runs: runs.map((r) => [...r]),
        timeoutMillis: millis === undefined || millis === Number.POSITIVE_INFINITY ? null : millis,
        trace: options.trace !== undefined,
      }),
      options.signal,
    );
    if (reply.t !== 'results') throw unexpected(reply);
    options.trace?.push(...reply.trace);
    return reply.results.map((r) => [...r]);
  }

  placed(record: PlacementRecord): void {
    // The coordinator keeps the first home a variable is given; so does the copy here, until
    // the coordinator's own comes back.
    for (const v of record.variables) if (!this.home(v.name)) this.localHomes.set(v.name, v.worker);
    void this.call((id) => ({ t: 'placed', id, record }))
      .then((reply) => {
        if (reply.t === 'state') this.adopt(reply.state);
      })
      .catch(() => undefined);
  }

  home(variable: string): string | undefined {
    return this.localHomes.get(variable);
  }

  async dropVariables(names: readonly string[]): Promise<void> {
    const reply = await this.call((id) => ({ t: 'drop', id, variables: [...names] }));
    if (reply.t !== 'state') throw unexpected(reply);
    for (const name of names) this.localHomes.delete(name);
    this.adopt(reply.state);
  }

  async story(...subjects: string[]): Promise<StoryEntry[]> {
    const reply = await this.call((id) => ({ t: 'story', id, subjects }));
    if (reply.t !== 'story') throw unexpected(reply);
    return [...reply.entries];
  }

  /** Bytes between the coordinator and each of its workers so far (compare before and after). */
  async traffic(): Promise<LinkTraffic[]> {
    const reply = await this.call((id) => ({ t: 'traffic', id }));
    if (reply.t !== 'traffic') throw unexpected(reply);
    return [...reply.links];
  }

  planPrefix(): string {
    return `c${this.client}p${this.nextPlan++}`;
  }

  generation(worker: string): number {
    return this.state.generations.find(([w]) => w === worker)?.[1] ?? 0;
  }

  /** A client does not follow replacements as they happen; `settled` waits for them all. */
  lost(): readonly string[] {
    return [];
  }

  async settled(): Promise<void> {
    const reply = await this.call((id) => ({ t: 'settle', id }));
    if (reply.t !== 'state') throw unexpected(reply);
    this.adopt(reply.state);
  }

  /** Leaves the cluster; the coordinator and its workers go on serving others. */
  async close(): Promise<void> {
    this.link.close('the client is done');
  }

  private adopt(state: ClusterState): void {
    this.state = state;
    for (const [variable, worker] of state.homes) this.localHomes.set(variable, worker);
  }

  /** Sends a request and waits for its answer; an error answer rejects with the coordinator's KilnError. */
  private call(make: (id: number) => ToCoordinator, signal?: AbortSignal): Promise<Reply> {
    if (this.lostReason !== null)
      return Promise.reject(
        new KilnError('worker', `lost the coordinator at ${this.url}: ${this.lostReason}`),
      );
    if (signal?.aborted)
      return Promise.reject(new KilnError('cancelled', 'the run was cancelled by its caller'));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const onAbort = () => void this.link.send({ t: 'cancel', id }).catch(() => undefined);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (m) => {
          signal?.removeEventListener('abort', onAbort);
          if (m.t === 'error') reject(new KilnError(m.code, m.message));
          else resolve(m);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      void this.link.send(make(id)).catch(() => undefined);
    });
  }
}

const unexpected = (m: Reply) => new KilnError('protocol', `the coordinator answered '${m.t}' out of turn`);

/** Connects to a standalone coordinator (`kiln coordinator`): a Cluster to give a ClusterSession. */
export const connect = (url: string, options?: ConnectOptions): Promise<ClusterClient> =>
  ClusterClient.connect(url, options);
