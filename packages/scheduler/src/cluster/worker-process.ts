import { Worker } from 'node:worker_threads';
import { KilnError } from '@kiln/ir';
import type { ResourceLimits } from '../limits/limits.js';
import { dial } from '../net/dial.js';
import { FrameLink } from '../net/link.js';
import type { NetLog } from '../net/log.js';
import { decodeToWorker, encodeFrameParts } from './codec.js';
import { ProgressBoard } from './progress-board.js';
import type { DeviceSpec, FromWorker, ToWorker } from './protocol.js';
import { DEVICE_THREAD_LIMITS, WORKER_ENTRY, WORKER_EXEC_ARGV } from './thread-worker.js';
import { unbatch } from './tick-batch.js';

export interface WorkerProcessOptions {
  /** The coordinator's address, ws://host:port or wss://host:port. */
  readonly connect: string;
  readonly token?: string;
  /** A CA file to verify a wss:// coordinator, and wss:// peers, with. */
  readonly ca?: string;
  /**
   * Serve this worker's peer port over wss:// with this certificate and key (other workers verify
   * it with their CA), so tensors between workers are encrypted as control messages are.
   */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The device this worker serves: named here, by whoever starts the worker, and nowhere else. */
  readonly device: DeviceSpec;
  readonly limits?: ResourceLimits;
  readonly heartbeatMillis?: number;
  /**
   * How long a partition may run without starting a node before this worker gives up on its
   * device thread (stuck in a kernel): it says where, drops the connection, and comes back with a
   * fresh thread. Default DEFAULT_WATCHDOG_MILLIS.
   */
  readonly watchdogMillis?: number;
  /** Keep reconnecting when the coordinator goes away (with capped, jittered backoff). Default true. */
  readonly reconnect?: boolean;
  /** Called with each line worth telling an operator (connected, lost, refused...). */
  readonly log: NetLog;
  /**
   * Called when the coordinator has greeted this worker, with the name it gave it and the address
   * its peers push values to (the port it bound for them).
   */
  readonly onReady?: (name: string, peer: string | undefined) => void;
}

/** What a running worker process looks like to its owner (the CLI, or a test). */
export interface WorkerProcess {
  /**
   * Resolves when the worker has stopped: stop() was called, or (without reconnecting) the
   * coordinator went away. Rejects when it cannot go on: a refused token, or no coordinator to
   * reach without reconnecting.
   */
  readonly done: Promise<void>;
  /** Closes the connection and the device, failing the runs in flight; resolves when all is down. */
  stop(): Promise<void>;
}

/** The progress watchdog's default: generous, since one kernel of a large model can take long. */
export const DEFAULT_WATCHDOG_MILLIS = 120_000;

/**
 * The longest a device thread outlives its closed control link, waiting for the closing handshake
 * (see the link's close handler).
 */
const CLOSE_GRACE_MILLIS = 2000;

const BACKOFF_START_MILLIS = 100;
const BACKOFF_MAX_MILLIS = 5000;

/**
 * A worker on another machine (or another process): it dials the coordinator and serves it
 * exactly as a worker thread serves a thread pool. The device runs in a worker thread of its own.
 * The connection this process dialed (its control link) stays on the main thread, which answers
 * heartbeats on it even while a long kernel runs, and watches the device thread for progress.
 * Once greeted, the device thread opens a run link to the coordinator itself, and every message
 * after the hello travels on it, straight to the thread that handles it (see RemoteWorker).
 */
export function startWorkerProcess(options: WorkerProcessOptions): WorkerProcess {
  let stopping = false;
  let current: { link: FrameLink<ToWorker, FromWorker>; thread: Worker } | null = null;
  let wake: (() => void) | null = null;

  /** How the last session ended: why, whether it got as far as ready, and whether retrying is futile. */
  interface Ended {
    readonly reason: string;
    readonly greeted: boolean;
    readonly fatal?: KilnError;
  }

  const session = async (): Promise<Ended> => {
    const link = await dial(
      options.connect,
      {
        ...(options.token !== undefined ? { token: options.token } : {}),
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
      },
      (ws) =>
        new FrameLink<ToWorker, FromWorker>(ws, encodeFrameParts, {
          peer: `coordinator at ${options.connect}`,
          decode: (frame) => decodeToWorker(frame),
          log: options.log,
          ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        }),
    );
    // The data plane lives in the device thread: peers push values to it on the interface this
    // process reaches its coordinator through.
    const board = new ProgressBoard();
    const thread = new Worker(WORKER_ENTRY, {
      execArgv: WORKER_EXEC_ARGV,
      resourceLimits: DEVICE_THREAD_LIMITS,
      workerData: {
        device: options.device,
        limits: options.limits ?? {},
        peer: {
          host: link.localAddress ?? '127.0.0.1',
          ...(options.token !== undefined ? { token: options.token } : {}),
          ...(options.tls !== undefined ? { tls: options.tls } : {}),
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
        },
        progress: board.buffer,
        // Where the thread opens its run link, once greeted.
        coordinator: {
          url: options.connect,
          ...(options.token !== undefined ? { token: options.token } : {}),
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
        },
      },
    });
    current = { link, thread };
    const watchdog = watch(board, options.watchdogMillis ?? DEFAULT_WATCHDOG_MILLIS, (reason) => {
      options.log(reason);
      // The coordinator sees the connection close with the reason (its run fails naming this
      // worker and where it was stuck); the thread ends once it has, and a fresh one comes with
      // the reconnection.
      link.close(reason, 1011);
    });
    return await new Promise<Ended>((resolve) => {
      let reason = 'the connection closed';
      let greeted = false;
      let fatal: KilnError | undefined;
      // The control link brings the hello; everything after it goes to the thread on its run link.
      link.onMessage((message) => {
        if (message.t === 'hello') options.log(`greeted by the coordinator as ${message.worker}`);
        thread.postMessage(message);
      });
      const fromThread = (message: FromWorker) => {
        // The thread answered its greeting on its run link; this is word of it, not to relay.
        if (message.t === 'ready') {
          greeted = true;
          options.onReady?.(message.worker, message.peer);
          return;
        }
        // A greeting this worker refuses (another protocol version) will not change by
        // reconnecting to the same coordinator.
        if (!greeted && message.t === 'failed' && message.error.code === 'protocol')
          fatal = new KilnError(
            'protocol',
            `the coordinator at ${options.connect}: ${message.error.message}`,
          );
        link.send(message).catch(() => {
          // The link closed under the send: its close handler tells the story.
        });
      };
      thread.on('message', (posted: unknown) => {
        for (const message of unbatch(posted)) fromThread(message as FromWorker);
      });
      thread.on('error', (e) => {
        reason = `the device thread failed: ${e instanceof Error ? e.message : String(e)}`;
        options.log(reason);
        link.close(reason, 1011);
      });
      // A thread that let its device go when asked ends with code 0: the coordinator released
      // this worker (or the process is stopping). Anything else is a failure.
      thread.on('exit', (code) =>
        code === 0
          ? link.close('released by the coordinator', 1000)
          : link.close('the device thread exited', 1011),
      );
      link.onClose((why) => {
        reason = why;
        clearInterval(watchdog);
        // The thread (and with it the run link) ends once this link's socket has closed: ended
        // first, the run link's drop could reach the coordinator before this link's reason, a
        // stuck kernel's say, and the run would fail naming neither.
        const grace = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MILLIS).unref());
        void Promise.race([link.socketClosed, grace]).then(() => thread.terminate());
        current = null;
        resolve({ reason, greeted, ...(fatal ? { fatal } : {}) });
      });
    });
  };

  const done = (async () => {
    let delay = BACKOFF_START_MILLIS;
    while (!stopping) {
      try {
        const { reason, greeted, fatal } = await session();
        if (fatal) throw fatal;
        if (!stopping)
          options.log(reason === 'released by the coordinator' ? reason : `lost the coordinator: ${reason}`);
        // Back to a quick retry only after a session that got going: one refused at its greeting
        // backs off as a failed dial does (each try starts a device thread).
        if (greeted) delay = BACKOFF_START_MILLIS;
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        // A refused token or protocol version will not get better by itself; nor will anything,
        // without reconnecting.
        const futile = e instanceof KilnError && (/401/.test(message) || e.code === 'protocol');
        if (futile || options.reconnect === false) throw e;
        options.log(`${message}; trying again`);
      }
      if (stopping || options.reconnect === false) return;
      const wait = delay * (0.5 + Math.random());
      delay = Math.min(BACKOFF_MAX_MILLIS, delay * 2);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  })();

  return {
    done,
    async stop() {
      stopping = true;
      wake?.();
      const c = current;
      if (c) {
        // The device is released in order; runs in flight fail at the coordinator, which sees the
        // connection close.
        c.thread.postMessage({ t: 'close' } satisfies ToWorker);
        await Promise.race([
          new Promise((resolve) => c.thread.once('exit', resolve)),
          new Promise((resolve) => setTimeout(resolve, 1000).unref()),
        ]);
        c.link.close('the worker is shutting down', 1001);
        await c.thread.terminate();
      }
      await done.catch(() => undefined);
    },
  };
}

/**
 * Calls `stuck` once, saying where, when a partition has been running with no node started for
 * `millis`. Checked a few times per period, from this (main) thread, which a stuck kernel on the
 * device thread does not block.
 */
function watch(board: ProgressBoard, millis: number, stuck: (reason: string) => void) {
  let last = board.read().ticks;
  let since = performance.now();
  let fired = false;
  const timer = setInterval(
    () => {
      const now = performance.now();
      const p = board.read();
      if (!p.running || p.ticks !== last) {
        last = p.ticks;
        since = now;
        return;
      }
      if (fired || now - since < millis) return;
      fired = true;
      const where = p.node >= 0 ? `node ${p.node} of partition ${p.partition}` : `partition ${p.partition}`;
      stuck(
        // Short: it travels as the WebSocket close reason (at most 123 bytes).
        `stuck: no progress for ${Math.round(now - since)} ms in ${where} (watchdogMillis ${millis})`,
      );
    },
    Math.max(20, Math.min(1000, millis / 4)),
  );
  timer.unref?.();
  return timer;
}
