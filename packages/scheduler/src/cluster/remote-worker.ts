import { Effect } from 'effect';
import type { FrameLink } from '../net/link.js';
import type { DeviceCapabilities } from './capabilities.js';
import { WorkerStartFailed, WorkerStartTimeout } from './errors.js';
import type { PoolWorker, WorkerListener } from './pool-worker.js';
import { type FromWorker, PROTOCOL_VERSION, type ToWorker } from './protocol.js';

type Link = FrameLink<FromWorker, ToWorker>;

/**
 * A run link's one-time key: 128 random bits, as hex. Web Crypto, which Node has as a global:
 * this module is also in the browser bundle (its page never starts remote workers).
 */
function runLinkKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Why a worker's ready is refused for its protocol version, if it is. */
function versionRefusal(message: FromWorker): string | null {
  return message.t === 'ready' && message.version !== PROTOCOL_VERSION
    ? `it speaks protocol version ${message.version}, this coordinator ${PROTOCOL_VERSION}`
    : null;
}

/** Waits for the run link presenting a key (WorkerLobby.expectRunLink); returns how to stop waiting. */
export type ExpectRunLink = (key: string, attach: (link: Link) => void) => () => void;

/**
 * A worker in another process, possibly on another machine, as the pool sees it: two sockets.
 * The control link is the one the process dialed in on; its main thread answers heartbeats on it
 * even while a long kernel runs, so it says whether the worker lives. The run link is its device
 * thread's own: partitions, variables and replies go on it straight to and from the thread that
 * runs them, with no hop through the process's main thread (two thread wake-ups per message,
 * which on a small machine cost more than the socket). Either closing is the worker's death, at
 * once; so is a control link that stops answering heartbeats.
 */
export class RemoteWorker implements PoolWorker {
  private stopping = false;
  private exited = false;

  private constructor(
    readonly name: string,
    private readonly control: Link,
    private readonly run: Link,
    readonly device: DeviceCapabilities,
    /** Where the other workers push values to it. */
    readonly peerUrl: string | undefined,
  ) {}

  get alive(): boolean {
    return !this.control.closed && !this.run.closed;
  }

  /** Bytes sent to it and received from it so far, on both its links. */
  get traffic(): { readonly sent: number; readonly received: number } {
    return {
      sent: this.control.bytesSent + this.run.bytesSent,
      received: this.control.bytesReceived + this.run.bytesReceived,
    };
  }

  /** Where it connected from, for messages. */
  get peer(): string {
    return this.control.peer;
  }

  send(message: ToWorker): void {
    // A send that fails means the link closed: its close handler reports the worker dead.
    if (!this.run.closed) this.run.send(message).catch(() => undefined);
  }

  /**
   * Greets a worker on its control link as `name`, and waits for its device thread to open its
   * run link with the key the greeting gave and say it is ready there.
   */
  static start(
    name: string,
    control: Link,
    listener: WorkerListener,
    timeoutMillis: number,
    expectRunLink: ExpectRunLink,
  ): Effect.Effect<RemoteWorker, WorkerStartFailed | WorkerStartTimeout> {
    return Effect.callback<RemoteWorker, WorkerStartFailed>((resume) => {
      let worker: RemoteWorker | null = null;
      let run: Link | null = null;
      let settled = false;
      /** Lets go of both links and the key; says whether it had not settled yet. */
      const abandon = (why: string, code: number): boolean => {
        if (settled) return false;
        settled = true;
        stopWaiting();
        run?.close(why, code);
        control.close(why, code);
        return true;
      };
      const fail = (why: string, code = 1011) => {
        if (abandon(why, code)) resume(Effect.fail(new WorkerStartFailed({ worker: name, message: why })));
      };
      /** Once ready: the first of its links to close takes the other with it, and the worker is dead. */
      const lost = (which: string, reason: string) => {
        const w = worker;
        if (!w || w.exited) return;
        w.exited = true;
        // Stopping, its links close as it lets go (stop() closes what is left).
        if (w.stopping) return;
        w.run.close(`its ${which} link closed`, 1011);
        w.control.close(`its ${which} link closed`, 1011);
        listener.exit(w, `${w.peer}: ${reason}`);
      };
      const key = runLinkKey();
      const stopWaiting = expectRunLink(key, (link) => {
        run = link;
        link.onMessage((message) => {
          if (worker) return listener.message(worker, message);
          const refusal = versionRefusal(message);
          if (refusal) fail(refusal, 1002);
          else if (message.t === 'ready') {
            settled = true;
            worker = new RemoteWorker(name, control, link, message.device, message.peer);
            resume(Effect.succeed(worker));
          } else if (message.t === 'failed') {
            fail(`worker failed to start: ${message.error.message}`);
          } else fail(`its run link sent '${message.t}' before ready`, 1008);
        });
        link.onClose((reason) => (worker ? lost('run', reason) : fail(`its run link closed: ${reason}`)));
      });
      control.onMessage((message) => {
        if (worker) return;
        // Before its run link is up, the control link carries the answer to a greeting it refuses.
        const refusal = versionRefusal(message);
        if (refusal) fail(refusal, 1002);
        else if (message.t === 'failed') {
          fail(`worker failed to start: ${message.error.message}`);
        } else
          fail(
            `it answered '${message.t}' on its control link; version ${PROTOCOL_VERSION} answers on a run link`,
            1008,
          );
      });
      control.onClose((reason) => (worker ? lost('control', reason) : fail(reason)));
      control
        .send({ t: 'hello', version: PROTOCOL_VERSION, worker: name, attach: key })
        .catch(() => undefined);
      // Interrupted (timed out, or the pool closed) before it was ready.
      return Effect.sync(() => void abandon('the coordinator gave up waiting for it to be ready', 1001));
    }).pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () => Effect.fail(new WorkerStartTimeout({ worker: name, millis: timeoutMillis })),
      }),
    );
  }

  /** Asks the worker to release its device, then closes both connections. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.stopping = true;
    this.send({ t: 'close' });
    // The process closes its control link once its device thread has let go of the device.
    const closed = new Promise<void>((resolve) => this.control.onClose(() => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([closed, grace]);
    this.run.close('the coordinator stopped this worker', 1001);
    this.control.close('the coordinator stopped this worker', 1001);
  }

  /** Drops both connections at once, as a lost machine would. */
  async kill(): Promise<void> {
    this.run.terminate('killed by the coordinator');
    this.control.terminate('killed by the coordinator');
  }
}
