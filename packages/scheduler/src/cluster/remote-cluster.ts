import type { IncomingMessage, ServerResponse } from 'node:http';
import { KilnError } from '@kiln/ir';
import { Effect, Scope } from 'effect';
import type WebSocket from 'ws';
import { FrameLink } from '../net/link.js';
import type { NetLog } from '../net/log.js';
import { stderrLog } from '../net/log.js';
import type { TlsFiles } from '../net/server.js';
import { ClientDoor } from './client-door.js';
import {
  decodeToCoordinator,
  encodeClientFrame,
  type FromCoordinator,
  type LinkTraffic,
  type ToCoordinator,
} from './client-protocol.js';
import { type ClusterError, WorkerStartFailed, WorkerStartTimeout } from './errors.js';
import type { PoolWorker, WorkerListener } from './pool-worker.js';
import { RemoteWorker } from './remote-worker.js';
import { WorkerLobby } from './worker-lobby.js';
import { MAX_TIMER_MILLIS, WorkerPool } from './worker-pool.js';

export interface RemoteClusterOptions {
  /** How many workers the cluster runs on (names worker:0..N-1). Default 2. */
  readonly workers?: number;
  /** The address to listen on for workers. Default 127.0.0.1; any other needs a token. */
  readonly host?: string;
  /** Default 0: the system picks one (read it from `url`). */
  readonly port?: number;
  /** The shared secret workers present. */
  readonly token?: string;
  readonly tls?: TlsFiles;
  /** How long to wait for a worker to connect and be ready, at start and to replace one. Default 60 s. */
  readonly startTimeoutMillis?: number;
  /** Ping interval; a worker is dead after 3 missed. Default 500 ms. */
  readonly heartbeatMillis?: number;
  /** The largest frame a worker may send. Default 1 GiB. */
  readonly maxFrameBytes?: number;
  /** Where refusals and arrivals are told; default: standard error. */
  readonly log?: NetLog;
  /** Worker names are `${prefix}:0`, ... (default 'worker'). */
  readonly prefix?: string;
  /**
   * Other services on the same port, by path (the job service at `/jobs`): each authenticated
   * connection to that path is handed over as it arrives.
   */
  readonly routes?: ReadonlyMap<string, (ws: WebSocket, peer: string) => void>;
  /**
   * What answers plain HTTP requests on the same port (the jobs dashboard); it checks its own
   * access. Default: 426, the port only upgrades.
   */
  readonly onRequest?: (request: IncomingMessage, response: ServerResponse) => void;
}

/**
 * A cluster of worker processes, on this machine or others, that dial in: the same WorkerPool as
 * threads, with sockets for MessagePorts. `listen` opens the port and resolves once `workers` of
 * them are connected and ready; a worker that dies is replaced by the next to connect (spares wait
 * in the lobby). Start workers with `kiln worker --connect <url>`. Programs in other processes use
 * it too: `connect(url)` (cluster-client.ts) reaches it on the same port, at the client path.
 */
export class RemoteCluster extends WorkerPool {
  private lobby: WorkerLobby | null = null;
  private closeServer: (() => Promise<void>) | null = null;
  private closing = false;
  /** Where workers connect: ws://host:port (or wss://). */
  url = '';

  /**
   * Opens the port; `onListening` hears its address before any worker is awaited (to start
   * workers that dial it). Resolves when every worker is ready.
   */
  static async listen(
    options: RemoteClusterOptions = {},
    onListening?: (url: string) => void,
  ): Promise<RemoteCluster> {
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1)
      throw new KilnError(
        'invalid-argument',
        `RemoteCluster: workers must be a positive integer, got ${count}`,
      );
    const timeout = options.startTimeoutMillis ?? 60_000;
    if (!(Number.isInteger(timeout) && timeout > 0 && timeout <= MAX_TIMER_MILLIS))
      throw new KilnError(
        'invalid-argument',
        `RemoteCluster: startTimeoutMillis must be a whole number of milliseconds from 1 to ${MAX_TIMER_MILLIS}, got ${timeout}`,
      );
    const log = options.log ?? stderrLog;
    // Clients that connect before the workers are ready wait for them.
    let ready: (cluster: RemoteCluster) => void = () => {};
    const started = new Promise<RemoteCluster>((resolve) => {
      ready = resolve;
    });
    let clients = 0;
    const { lobby, listening } = await WorkerLobby.open({
      onClient: (ws, peer) => {
        const client = clients++;
        const link = new FrameLink<ToCoordinator, FromCoordinator>(ws, encodeClientFrame, {
          peer: `client at ${peer}`,
          decode: (frame) => decodeToCoordinator(frame, options.maxFrameBytes),
          ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
          log,
          ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        });
        log(`client ${client} connected from ${peer}`);
        void started.then((cluster) => {
          if (cluster.closing) link.close('the coordinator is closing', 1001);
          else new ClientDoor(link, cluster, client, log);
        });
      },
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.token !== undefined ? { token: options.token } : {}),
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
      ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
      ...(options.routes !== undefined ? { routes: options.routes } : {}),
      ...(options.onRequest !== undefined ? { onRequest: options.onRequest } : {}),
      log,
    });
    const prefix = options.prefix ?? 'worker';
    const names = Array.from({ length: count }, (_, i) => `${prefix}:${i}`);
    // The next worker to connect takes the name. One that cannot (another protocol version, a
    // device that failed to load, a connection that closed before it was ready) is turned away
    // with a log line, and the name waits for the next: a broken or hostile process that dials in
    // must not fail the cluster.
    const start = (name: string, listener: WorkerListener): Effect.Effect<PoolWorker, ClusterError> =>
      Effect.tryPromise({
        try: () => lobby.take(timeout),
        catch: (e): WorkerStartTimeout | WorkerStartFailed =>
          e instanceof KilnError && e.code === 'timeout'
            ? new WorkerStartTimeout({ worker: name, millis: timeout })
            : new WorkerStartFailed({ worker: name, message: e instanceof Error ? e.message : String(e) }),
      }).pipe(
        Effect.flatMap((link) =>
          RemoteWorker.start(name, link, listener, timeout, (key, attach) =>
            lobby.expectRunLink(key, attach),
          ).pipe(
            Effect.catchTag('WorkerStartFailed', (e) =>
              Effect.suspend(() => {
                log(`turned away ${link.peer} as ${name}: ${e.message}`);
                return start(name, listener);
              }),
            ),
          ),
        ),
      );
    const cluster = new RemoteCluster(Scope.makeUnsafe(), names, start);
    cluster.lobby = lobby;
    cluster.closeServer = () => listening.close();
    cluster.url = listening.url;
    onListening?.(listening.url);
    await cluster.startAll();
    ready(cluster);
    return cluster;
  }

  /**
   * Bytes between the coordinator and each worker so far, per link: what a step costs the
   * coordinator's network (compare before and after a step).
   */
  traffic(): LinkTraffic[] {
    return [...this.current().values()]
      .filter((w): w is RemoteWorker => w instanceof RemoteWorker)
      .map((w) => ({ worker: w.name, peer: w.peer, ...w.traffic }));
  }

  /**
   * A worker joined (or replaced one): every worker learns where every other takes pushed values,
   * so tensors between partitions go worker to worker and never through this process.
   */
  protected override joined(_worker: PoolWorker): void {
    const workers = [...this.current().values()].filter((w): w is RemoteWorker => w instanceof RemoteWorker);
    const peers = workers.flatMap((w) => (w.peerUrl ? [[w.name, w.peerUrl] as const] : []));
    for (const w of workers) w.send({ t: 'peers', peers });
  }

  /** Workers connected and waiting to replace one that dies. */
  get spares(): number {
    return this.lobby?.spares ?? 0;
  }

  override async close(): Promise<void> {
    this.closing = true;
    this.lobby?.close();
    await super.close();
    await this.closeServer?.();
    this.closeServer = null;
  }
}
