import type { Device } from '@kiln/ir';
import type { PlacementRecord } from './placement-record.js';
import type { FromWorker, ToWorker, WireTensor } from './protocol.js';
import type { ScheduledPartition } from './run-scheduler.js';
import type { StoryEntry } from './story.js';
import type { ExecuteOptions } from './worker-pool.js';

type Request = Extract<ToWorker, { request: number }>;
/** A request to one worker, without its id (the cluster numbers requests). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'request'> : never) : never;

/**
 * A set of named workers that run partitions: what ClusterSession (and later jobs) runs on.
 * Threads in this process (ThreadPool) and processes on other machines (RemoteCluster) are both
 * one; a program switches between them by how it makes the cluster, nothing else.
 */
export interface Cluster {
  /** The workers' names, in order: the devices plans are placed on. */
  readonly names: readonly string[];
  /**
   * Devices to plan with, answering from what each worker reported it can run, once the workers
   * of `workers` (all, if not given) that died have been replaced; a worker still being replaced
   * answers as it did before it died.
   */
  planningDevices(workers?: readonly string[]): Promise<Device[]>;
  /** Sends a request (load, variables, unload) to one worker and waits for its answer. */
  request(worker: string, body: RequestBody, what: string): Promise<FromWorker>;
  /** Runs a lowered plan once per feed set, as one step; returns each run's fetches. */
  execute(
    partitions: readonly ScheduledPartition[],
    fetchCount: number,
    runs: readonly ReadonlyMap<string, WireTensor>[],
    options?: ExecuteOptions,
  ): Promise<WireTensor[][]>;
  /**
   * Records where a plan's partitions and variables went, and why. The cluster keeps each
   * variable's home from then on (sessions on one cluster share its variables by name).
   */
  placed(record: PlacementRecord): void;
  /** The worker a variable lives on, once a plan has placed it. */
  home(variable: string): string | undefined;
  /**
   * Frees variables on the workers that hold them and forgets their homes (a finished job's
   * weights and optimizer state). Names without a home are skipped.
   */
  dropVariables(names: readonly string[]): Promise<void>;
  /**
   * What the coordinator saw and decided about these subjects (worker names, `run:N`, partition
   * keys, plan prefixes, variable names; everything it keeps if none), oldest first. Print it
   * with formatStory.
   */
  story(...subjects: string[]): Promise<StoryEntry[]>;
  /** A prefix no other plan loaded on this cluster uses, for its partition keys. */
  planPrefix(): string;
  /** How many times the worker of this name was started: it changes when it is replaced. */
  generation(worker: string): number;
  /**
   * Waits until every worker of `workers` (all, if not given) that died has been replaced: a
   * program that uses some of the workers goes on while another one, which it does not use, waits
   * for its replacement.
   */
  settled(workers?: readonly string[]): Promise<void>;
  /** The workers that died and are not yet replaced. */
  lost(): readonly string[];
  close(): Promise<void>;
}
