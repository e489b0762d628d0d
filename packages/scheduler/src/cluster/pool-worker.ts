import type { DeviceCapabilities } from './capabilities.js';
import type { FromWorker, ToWorker } from './protocol.js';

/**
 * A worker as a pool sees it, whatever carries its messages: a thread's MessagePort
 * (ThreadWorker) or a socket to another process or machine (RemoteWorker). The pool's logic is
 * written once against this.
 */
export interface PoolWorker {
  readonly name: string;
  /** What its device can run, from its ready message. */
  readonly device: DeviceCapabilities;
  readonly alive: boolean;
  /** Where it takes values its peers push, if it takes them over a socket. */
  readonly peerUrl?: string | undefined;
  send(message: ToWorker): void;
  /** Asks it to release its device and go; ends it if it does not. */
  stop(): Promise<void>;
  /** Ends it at once, as a crash would (tests and drills). */
  kill(): Promise<void>;
}

/** Where a worker's messages and its end go, as the pool routes them. */
export interface WorkerListener {
  message(worker: PoolWorker, message: FromWorker): void;
  exit(worker: PoolWorker, reason: string): void;
}
