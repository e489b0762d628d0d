import { MessageChannel } from 'node:worker_threads';
import { KilnError } from '@kiln/ir';
import { Scope } from 'effect';
import { type ResourceLimits, resolveLimits } from '../limits/limits.js';
import type { PoolWorker } from './pool-worker.js';
import type { DeviceSpec } from './protocol.js';
import { ThreadWorker } from './thread-worker.js';
import { WorkerPool } from './worker-pool.js';

export interface ThreadPoolOptions {
  /** How many worker threads (default 2). */
  readonly workers?: number;
  /**
   * The device each worker creates: a module exporting a kiln `plugin`, such as
   * '@kiln/backend-cpu'. Default: the one setDefaultWorkerDevice names (the `kiln` package: CPU).
   */
  readonly device?: DeviceSpec;
  /** Worker names are `${prefix}:0`, `${prefix}:1`, ... (default 'worker'). */
  readonly prefix?: string;
  /** How long a worker may take to start and create its device (default 30 s). */
  readonly startTimeoutMillis?: number;
  /**
   * Memory each worker's device may give to what it is sent (per tensor, in all); set in the
   * worker when it starts, never by a message (DEFAULT_LIMITS).
   */
  readonly limits?: ResourceLimits;
}

let defaultWorkerDevice: DeviceSpec | null = null;

/** The device workers create when a pool names none (the scheduler itself imports no backend). */
export function setDefaultWorkerDevice(device: DeviceSpec): void {
  defaultWorkerDevice = device;
}

/** Worker threads in this process, each holding its own device: a WorkerPool over MessagePorts. */
export class ThreadPool extends WorkerPool {
  /** A new thread gets a MessageChannel to every other: the data plane between threads. */
  protected override joined(worker: PoolWorker): void {
    if (!(worker instanceof ThreadWorker)) return;
    for (const other of this.current().values()) {
      if (other === worker || !(other instanceof ThreadWorker)) continue;
      const { port1, port2 } = new MessageChannel();
      worker.givePeerPort(other.name, port1);
      other.givePeerPort(worker.name, port2);
    }
  }

  static async create(options: ThreadPoolOptions): Promise<ThreadPool> {
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1)
      throw new KilnError('invalid-argument', `ThreadPool: workers must be a positive integer, got ${count}`);
    const device = options.device ?? defaultWorkerDevice;
    if (!device)
      throw new KilnError(
        'invalid-argument',
        "ThreadPool: no device for the workers; pass { device: { module: '@kiln/backend-cpu' } } or call setDefaultWorkerDevice",
      );
    const prefix = options.prefix ?? 'worker';
    const names = Array.from({ length: count }, (_, i) => `${prefix}:${i}`);
    const limits = resolveLimits(options.limits);
    const startTimeout = options.startTimeoutMillis ?? 30_000;
    const pool = new ThreadPool(Scope.makeUnsafe(), names, (name, listener) =>
      ThreadWorker.start(name, device, listener, startTimeout, limits),
    );
    await pool.startAll();
    return pool;
  }
}
