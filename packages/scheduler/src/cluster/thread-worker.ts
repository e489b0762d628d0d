import { type MessagePort, Worker } from 'node:worker_threads';
import { Effect } from 'effect';
import type { Limits } from '../limits/limits.js';
import type { DeviceCapabilities } from './capabilities.js';
import { WorkerStartFailed, WorkerStartTimeout } from './errors.js';
import type { PoolWorker, WorkerListener } from './pool-worker.js';
import {
  type DeviceSpec,
  type FromWorker,
  PROTOCOL_VERSION,
  parseFromWorker,
  type ToWorker,
} from './protocol.js';
import type { ThreadControl } from './thread-control.js';
import { TickBatch, unbatch } from './tick-batch.js';

/**
 * Running from TypeScript sources (tests, tsx), the worker starts through a small JavaScript file
 * that registers tsx; built, it starts the compiled entry directly.
 */
const fromSource = import.meta.url.endsWith('.ts');
export const WORKER_ENTRY = new URL(
  fromSource ? './worker-source-entry.mjs' : './worker-main.js',
  import.meta.url,
);
export const WORKER_EXEC_ARGV = fromSource ? ['--conditions=@kiln/source'] : [];

/**
 * The device thread's heap limits: a young generation of 6 MiB (semi-spaces of 2 MiB) instead of
 * V8's up to 48. The thread's JavaScript heap is small (10-15 MiB: plans, messages, views) and its
 * garbage young, while tensor bytes live outside the heap. Left to grow, the young generation
 * reached 16 MiB semi-spaces, V8 then found the old generation's headroom (16 MiB) no larger than
 * the new space and started a full incremental GC every 60-70 ms, for good: measured on the
 * 1 MiB all-reduce, it cost a worker 2-6 ms of CPU per step (its own thread and V8's helper), in
 * one worker of two at random, and made steps 30-80% slower. Small semi-spaces are scavenged
 * more often, at 0.3-0.5 ms each; with 2 MiB ones, none of 30 workers (10 runs traced with
 * --trace-gc) fell into that state.
 */
export const DEVICE_THREAD_LIMITS = { maxYoungGenerationSizeMb: 6 } as const;

/** One worker thread: the transport (a MessagePort) and the protocol's handshake. */
export class ThreadWorker implements PoolWorker {
  private exited = false;
  /** Set by stop(): the exit that follows is expected, not a failure to report. */
  private stopping = false;
  private readonly batch: TickBatch;
  private constructor(
    readonly name: string,
    private readonly thread: Worker,
    readonly device: DeviceCapabilities,
  ) {
    this.batch = new TickBatch(thread);
  }

  get alive(): boolean {
    return !this.exited;
  }

  send(message: ToWorker): void {
    // Tensor bytes are SharedArrayBuffers: posting shares them, nothing large is cloned.
    if (!this.exited) this.batch.post(message);
  }

  /** Starts a thread, greets it and waits for `ready`; fails with the thread's own error. */
  static start(
    name: string,
    device: DeviceSpec,
    listener: WorkerListener,
    timeoutMillis: number,
    limits: Limits,
  ): Effect.Effect<ThreadWorker, WorkerStartFailed | WorkerStartTimeout> {
    return Effect.callback<ThreadWorker, WorkerStartFailed>((resume) => {
      // The device and the limits travel as the thread's own start data, as a process's would on
      // its command line: no message can choose them.
      const thread = new Worker(WORKER_ENTRY, {
        execArgv: WORKER_EXEC_ARGV,
        resourceLimits: DEVICE_THREAD_LIMITS,
        name,
        workerData: { device, limits },
      });
      let worker: ThreadWorker | null = null;
      let reason = 'exited';
      const receive = (raw: unknown) => {
        let message: FromWorker;
        try {
          message = parseFromWorker(raw);
        } catch (e) {
          reason = e instanceof Error ? e.message : String(e);
          void thread.terminate();
          return;
        }
        if (worker) return listener.message(worker, message);
        if (message.t === 'ready') {
          worker = new ThreadWorker(name, thread, message.device);
          resume(Effect.succeed(worker));
        } else if (message.t === 'failed') {
          resume(Effect.fail(new WorkerStartFailed({ worker: name, message: message.error.message })));
          void thread.terminate();
        }
      };
      thread.on('message', (posted: unknown) => {
        for (const raw of unbatch(posted)) receive(raw);
      });
      thread.on('error', (e) => {
        reason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      });
      thread.on('exit', (code) => {
        const why = reason === 'exited' ? `exited with code ${code}` : reason;
        if (worker) {
          worker.exited = true;
          if (!worker.stopping) listener.exit(worker, why);
        } else resume(Effect.fail(new WorkerStartFailed({ worker: name, message: why })));
      });
      thread.postMessage({ t: 'hello', version: PROTOCOL_VERSION, worker: name } satisfies ToWorker);
      // Interrupted (a timeout, a closed pool) before it was ready: stop the thread.
      return Effect.sync(() => void thread.terminate());
    }).pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () => Effect.fail(new WorkerStartTimeout({ worker: name, millis: timeoutMillis })),
      }),
    );
  }

  /** Hands the thread its end of a channel to a peer thread (moved, not copied). */
  givePeerPort(peer: string, port: MessagePort): void {
    if (this.exited) {
      port.close();
      return;
    }
    // Messages go to the thread in the order they were sent, this one included.
    this.batch.flush();
    this.thread.postMessage({ t: 'peer-port', worker: peer, port } satisfies ThreadControl, [port]);
  }

  /** Asks the worker to release its device, then ends the thread. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.stopping = true;
    this.send({ t: 'close' });
    const ended = new Promise<void>((resolve) => this.thread.once('exit', () => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([ended, grace]);
    if (!this.exited) await this.thread.terminate();
  }

  /** Ends the thread at once (tests use it to simulate a crashed worker). */
  async kill(): Promise<void> {
    await this.thread.terminate();
  }
}
