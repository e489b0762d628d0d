import { KilnError } from '@kiln/ir';
import type WebSocket from 'ws';
import { FrameLink } from '../net/link.js';
import { type Listening, type ListenOptions, listen } from '../net/server.js';
import { CLIENT_PATH } from './client-protocol.js';
import { decodeFromWorker, encodeFrameParts } from './codec.js';
import { type FromWorker, RUN_LINK_PATH, type ToWorker } from './protocol.js';

/** How long a run link may take to say whose it is, after its upgrade. */
const ATTACH_TIMEOUT_MILLIS = 10_000;

export interface LobbyOptions extends ListenOptions {
  readonly heartbeatMillis?: number;
  /** Where connections to the client path go (programs that `connect`); workers use the root. */
  readonly onClient: (ws: WebSocket, peer: string) => void;
  /** Other services' paths (the job service's), each with where its connections go. */
  readonly routes?: ReadonlyMap<string, (ws: WebSocket, peer: string) => void>;
}

/**
 * Where workers that dialed in wait to be given a name: each authenticated connection becomes a
 * frame link and queues here until the pool takes one for a worker slot (at start, or to replace
 * a worker that died). Extra workers wait as spares. A connection that closes while it waits is
 * dropped from the queue.
 */
export class WorkerLobby {
  private readonly waiting: FrameLink<FromWorker, ToWorker>[] = [];
  private readonly takers: {
    give(link: FrameLink<FromWorker, ToWorker>): void;
    cancel(reason: KilnError): void;
  }[] = [];
  /** Run links awaited, by the key their worker's hello carried (see RemoteWorker.start). */
  private readonly runLinks = new Map<string, (link: FrameLink<FromWorker, ToWorker>) => void>();
  private closed = false;

  private constructor(private readonly options: LobbyOptions) {}

  /** Listens on the options' address; `url` says where workers should connect. */
  static async open(options: LobbyOptions): Promise<{ lobby: WorkerLobby; listening: Listening }> {
    const lobby = new WorkerLobby(options);
    const listening = await listen(options, (ws, request) => {
      const peer = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
      if (request.url === CLIENT_PATH) {
        options.onClient(ws, peer);
        return;
      }
      if (request.url === RUN_LINK_PATH) {
        lobby.runLinkArrived(
          new FrameLink<FromWorker, ToWorker>(ws, encodeFrameParts, {
            peer: `run link at ${peer}`,
            decode: (frame) => decodeFromWorker(frame, options.maxFrameBytes),
            ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
            log: options.log,
            // Its worker's liveness is its control link's to watch: the device thread at this end
            // may be inside a long kernel, deaf to pings.
            heartbeat: false,
          }),
        );
        return;
      }
      const route = request.url === undefined ? undefined : options.routes?.get(request.url);
      if (route) {
        route(ws, peer);
        return;
      }
      lobby.arrive(
        new FrameLink<FromWorker, ToWorker>(ws, encodeFrameParts, {
          peer: `worker at ${peer}`,
          decode: (frame) => decodeFromWorker(frame, options.maxFrameBytes),
          ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
          log: options.log,
          ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        }),
      );
    });
    return { lobby, listening };
  }

  /** Workers connected and waiting for a name. */
  get spares(): number {
    return this.waiting.length;
  }

  /** The next worker to connect (or one already waiting); rejects after `timeoutMillis`. */
  take(timeoutMillis: number): Promise<FrameLink<FromWorker, ToWorker>> {
    if (this.closed) return Promise.reject(new KilnError('cancelled', 'the coordinator is closed'));
    const ready = this.waiting.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const taker = {
        give: (link: FrameLink<FromWorker, ToWorker>) => {
          clearTimeout(timer);
          resolve(link);
        },
        cancel: (reason: KilnError) => {
          clearTimeout(timer);
          reject(reason);
        },
      };
      const timer = setTimeout(() => {
        this.takers.splice(this.takers.indexOf(taker), 1);
        reject(new KilnError('timeout', `no worker connected within ${timeoutMillis} ms`));
      }, timeoutMillis);
      this.takers.push(taker);
    });
  }

  /**
   * Hands the run link that presents `key` to `attach`, synchronously, as its first message (the
   * attach) arrives: the messages right behind it then reach the handler `attach` sets. Returns a
   * function that stops waiting (the worker was turned away first).
   */
  expectRunLink(key: string, attach: (link: FrameLink<FromWorker, ToWorker>) => void): () => void {
    this.runLinks.set(key, attach);
    return () => {
      if (this.runLinks.get(key) === attach) this.runLinks.delete(key);
    };
  }

  /** Turns away waiting workers, and whoever waits for one. */
  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t.cancel(new KilnError('cancelled', 'the coordinator is closing'));
    for (const link of this.waiting.splice(0)) link.close('the coordinator is closing', 1001);
  }

  /**
   * A connection to the run-link path: it must say at once whose run link it is, with a key a
   * worker's hello gave out and no other run link has taken; anything else is refused and logged.
   */
  private runLinkArrived(link: FrameLink<FromWorker, ToWorker>): void {
    const refuse = (why: string) => {
      this.options.log(`refused ${link.peer}: ${why}`);
      link.close(why, 1008);
    };
    const timer = setTimeout(
      () => refuse(`it did not attach within ${ATTACH_TIMEOUT_MILLIS} ms`),
      ATTACH_TIMEOUT_MILLIS,
    );
    timer.unref?.();
    link.onClose(() => clearTimeout(timer));
    link.onMessage((message) => {
      clearTimeout(timer);
      if (message.t !== 'attach') return refuse(`its first message was '${message.t}', not an attach`);
      const attach = this.runLinks.get(message.key);
      if (!attach) return refuse(`no worker was given its key (it claims to be ${message.worker})`);
      this.runLinks.delete(message.key);
      attach(link);
    });
  }

  private arrive(link: FrameLink<FromWorker, ToWorker>): void {
    if (this.closed) {
      link.close('the coordinator is closing', 1001);
      return;
    }
    this.options.log(`${link.peer} connected`);
    const taker = this.takers.shift();
    if (taker) {
      taker.give(link);
      return;
    }
    this.waiting.push(link);
    link.onClose(() => {
      const at = this.waiting.indexOf(link);
      if (at >= 0) this.waiting.splice(at, 1);
    });
  }
}
