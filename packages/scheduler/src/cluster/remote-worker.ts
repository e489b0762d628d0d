import { Effect } from 'effect';
import type { FrameLink } from '../net/link.js';
import type { DeviceCapabilities } from './capabilities.js';
import { WorkerStartFailed, WorkerStartTimeout } from './errors.js';
import type { PoolWorker, WorkerListener } from './pool-worker.js';
import { type FromWorker, PROTOCOL_VERSION, type ToWorker } from './protocol.js';

/**
 * A worker in another process, possibly on another machine, as the pool sees it: a socket (one
 * frame link) and the same handshake a thread does: hello names it, ready says what its device
 * runs. A closed socket is a dead worker, at once; so is one that stops answering heartbeats.
 */
export class RemoteWorker implements PoolWorker {
  private stopping = false;

  private constructor(
    readonly name: string,
    private readonly link: FrameLink<FromWorker, ToWorker>,
    readonly device: DeviceCapabilities,
    /** Where the other workers push values to it. */
    readonly peerUrl: string | undefined,
  ) {}

  get alive(): boolean {
    return !this.link.closed;
  }

  /** Bytes sent to it and received from it so far. */
  get traffic(): { readonly sent: number; readonly received: number } {
    return { sent: this.link.bytesSent, received: this.link.bytesReceived };
  }

  /** Where it connected from, for messages. */
  get peer(): string {
    return this.link.peer;
  }

  send(message: ToWorker): void {
    // A send that fails means the link closed: its close handler reports the worker dead.
    if (!this.link.closed) this.link.send(message).catch(() => undefined);
  }

  /** Greets a worker on `link` as `name` and waits for it to be ready. */
  static start(
    name: string,
    link: FrameLink<FromWorker, ToWorker>,
    listener: WorkerListener,
    timeoutMillis: number,
  ): Effect.Effect<RemoteWorker, WorkerStartFailed | WorkerStartTimeout> {
    return Effect.callback<RemoteWorker, WorkerStartFailed>((resume) => {
      let worker: RemoteWorker | null = null;
      link.onMessage((message) => {
        if (worker) return listener.message(worker, message);
        if (message.t === 'ready' && message.version !== PROTOCOL_VERSION) {
          const why = `it speaks protocol version ${message.version}, this coordinator ${PROTOCOL_VERSION}`;
          link.close(why, 1002);
          resume(Effect.fail(new WorkerStartFailed({ worker: name, message: why })));
        } else if (message.t === 'ready') {
          worker = new RemoteWorker(name, link, message.device, message.peer);
          resume(Effect.succeed(worker));
        } else if (message.t === 'failed') {
          link.close(`worker failed to start: ${message.error.message}`, 1011);
          resume(Effect.fail(new WorkerStartFailed({ worker: name, message: message.error.message })));
        }
      });
      link.onClose((reason) => {
        if (worker) {
          if (!worker.stopping) listener.exit(worker, `${worker.peer}: ${reason}`);
        } else resume(Effect.fail(new WorkerStartFailed({ worker: name, message: reason })));
      });
      link.send({ t: 'hello', version: PROTOCOL_VERSION, worker: name }).catch(() => undefined);
      return Effect.sync(() => {
        if (!worker) link.close('the coordinator gave up waiting for it to be ready', 1001);
      });
    }).pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () => Effect.fail(new WorkerStartTimeout({ worker: name, millis: timeoutMillis })),
      }),
    );
  }

  /** Asks the worker to release its device, then closes the connection. */
  async stop(): Promise<void> {
    if (this.link.closed) return;
    this.stopping = true;
    this.send({ t: 'close' });
    const closed = new Promise<void>((resolve) => this.link.onClose(() => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([closed, grace]);
    this.link.close('the coordinator stopped this worker', 1001);
  }

  /** Drops the connection at once, as a lost machine would. */
  async kill(): Promise<void> {
    this.link.terminate('killed by the coordinator');
  }
}
