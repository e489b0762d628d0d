import { type Device, KilnError } from '@kiln/ir';
import { Effect, Exit, Scope } from 'effect';
import { CapabilityDevice, type DeviceCapabilities } from './capabilities.js';
import type { Cluster, RequestBody } from './cluster.js';
import { type ClusterEvent, Coordinator } from './coordinator.js';
import { answered, type ClusterError, RunFailed, toKilnError } from './errors.js';
import type { PlacementRecord } from './placement-record.js';
import type { PoolWorker, WorkerListener } from './pool-worker.js';
import type { FromWorker, ToWorker, WireTensor } from './protocol.js';
import type { Instruction, RunFailure, ScheduledPartition } from './run-scheduler.js';
import type { StoryEntry } from './story.js';

export interface ExecuteOptions {
  /** Cancels the runs still going; the promise rejects with a KilnError('cancelled'). */
  readonly signal?: AbortSignal;
  /**
   * Fails the runs still going after this long (none by default; Infinity is none): the promise
   * rejects with a KilnError('timeout') naming the workers they waited for and the partitions those
   * were running. Those workers are taken for hung: their threads are ended and fresh ones started
   * under the same names, so their variables are lost, as when a worker dies.
   */
  readonly timeoutMillis?: number;
  /** Receives one entry per partition run, for schedules and profiles. */
  readonly trace?: TraceEntry[];
}

/**
 * One partition run on one worker: when it could start (sent, and the worker done with what it
 * held before) and when its results came back.
 */
export interface TraceEntry {
  readonly worker: string;
  readonly run: number;
  readonly partition: string;
  readonly start: number;
  readonly end: number;
  /** Time the worker itself spent (bind, kernels, read back). */
  readonly seconds: number;
}

/**
 * Each worker holds up to two partitions: the one it runs and the next, sent before the first
 * finishes (a consumer as soon as its producers are sent; it waits on the worker for their
 * values). A chain of partitions over workers then costs a push per link instead of a round trip
 * through the coordinator each, and the coordinator's latency hides behind the running partition.
 * Two, not more: what is sent ahead holds its feeds in the worker's memory.
 */
export const DISPATCH_AHEAD = 2;

/** The longest delay setTimeout keeps; a longer one would fire at once. */
export const MAX_TIMER_MILLIS = 2 ** 31 - 1;

/** Why a run's timeout is not one (a positive number of milliseconds; Infinity is none), if it is not. */
export function badTimeout(millis: number | undefined): KilnError | undefined {
  if (millis === undefined || (typeof millis === 'number' && millis > 0)) return undefined;
  return new KilnError(
    'invalid-argument',
    `timeoutMillis must be a positive number of milliseconds, got ${String(millis)}`,
  );
}

/** An event as the shell hands it over; the pool stamps it with a stimulus id and the time. */
type Event =
  ClusterEvent<WireTensor> extends infer E
    ? E extends ClusterEvent<WireTensor>
      ? Omit<E, 'stimulus' | 'at'>
      : never
    : never;

/** An execution under way, as the shell waits for it: where its runs' ends go. */
interface Execution {
  readonly runs: ReadonlySet<number>;
  /** When each partition instance was sent (`run/partition`), for traces. */
  readonly started: Map<string, number>;
  /** When each worker's last partition came back, for traces. */
  readonly lastEnd: Map<string, number>;
  readonly trace?: TraceEntry[];
  complete(run: number, fetches: readonly WireTensor[]): void;
  fail(run: number, failure: RunFailure): void;
}

/** Starts the worker of a name, on whatever carries its messages (a thread, a socket). */
export type StartWorker = (name: string, listener: WorkerListener) => Effect.Effect<PoolWorker, ClusterError>;

/**
 * Workers, each holding its own device, and the shell around the coordinator's state machine:
 * it owns the workers through an Effect Scope (closing the pool stops them all, whatever
 * happened), turns messages into coordinator events and instructions into messages, and replaces
 * a worker that died or hung. What carries the messages is the subclass's business: threads
 * (ThreadPool) or sockets to other processes and machines (RemoteCluster); everything here is the
 * same for both. The API is Promise-based; failures are KilnErrors naming the worker.
 */
export class WorkerPool implements Cluster {
  private readonly workers = new Map<string, PoolWorker>();
  private readonly replacing = new Map<string, Promise<void>>();
  private readonly generations = new Map<string, number>();
  /** What each worker's device reported, kept while a dead one waits for its replacement. */
  private readonly reported = new Map<string, DeviceCapabilities>();
  private readonly pending = new Map<number, { resolve(m: FromWorker): void; reject(e: KilnError): void }>();
  /** The cluster's state machine: every event goes through it, every decision comes from it. */
  private readonly coordinator = new Coordinator<WireTensor>({ dispatchAhead: DISPATCH_AHEAD });
  private stimuli = 0;
  /** The executions under way, by each of their runs. */
  private readonly executions = new Map<number, Execution>();
  /** Executions waiting for their workers, in the order they were asked for. */
  private readonly waiting: { readonly workers: ReadonlySet<string>; start(): void }[] = [];
  /** Workers an execution under way holds. */
  private readonly held = new Set<string>();
  private nextRequest = 0;
  private nextRun = 0;
  private nextPlan = 0;
  private closed = false;

  protected constructor(
    private readonly scope: Scope.Closeable,
    readonly names: readonly string[],
    private readonly startWorker: StartWorker,
  ) {}

  /** Starts every named worker; if one cannot start, the pool is closed and the error thrown. */
  protected async startAll(): Promise<void> {
    try {
      await run(
        Effect.all(
          this.names.map((n) => this.spawn(n)),
          { concurrency: 'unbounded' },
        ),
      );
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /**
   * Devices to plan with: one per worker, answering from the capabilities the worker reported when
   * it started. The placer only asks them what they support and what it costs; they never run
   * anything, and no device is created here.
   */
  async planningDevices(workers?: readonly string[]): Promise<Device[]> {
    return (await this.capabilities(workers)).map((d) => new CapabilityDevice(d));
  }

  /** Sends a request (load, variables, unload) to one worker and waits for its answer. */
  async request(worker: string, body: RequestBody, what: string): Promise<FromWorker> {
    // A worker that died holds nothing of what it had: unloading from it is done already (and its
    // replacement may be long in coming, or never, for a job that went on without it).
    if (body.t === 'unload' && !this.coordinator.up(worker)) return { t: 'ok', request: -1 };
    await this.replacing.get(worker);
    const w = this.worker(worker);
    const request = this.nextRequest++;
    const reply = new Promise<FromWorker>((resolve, reject) =>
      this.pending.set(request, { resolve, reject }),
    );
    w.send({ ...body, request } as ToWorker);
    const message = answered(worker, what, await reply);
    if (body.t === 'load') this.handle({ type: 'loaded', worker, partitions: [body.partition] });
    if (body.t === 'unload') this.handle({ type: 'unloaded', worker, partitions: body.partitions });
    return message;
  }

  /**
   * Runs a lowered plan once per entry of `runs` (the feeds of each), overlapping the runs where
   * their partitions allow (pipelining), and returns each run's fetches. Executions on disjoint
   * workers run side by side (two jobs, one per worker); one that needs a worker another holds
   * waits its turn, in order.
   */
  execute(
    partitions: readonly ScheduledPartition[],
    fetchCount: number,
    runs: readonly ReadonlyMap<string, WireTensor>[],
    options: ExecuteOptions = {},
  ): Promise<WireTensor[][]> {
    const bad = badTimeout(options.timeoutMillis);
    if (bad) return Promise.reject(bad);
    const workers = new Set(partitions.map((p) => p.worker));
    return new Promise<void>((start) => {
      this.waiting.push({ workers, start });
      this.admit();
    }).then(() =>
      this.executeNow(partitions, fetchCount, runs, options).finally(() => {
        for (const w of workers) this.held.delete(w);
        this.admit();
      }),
    );
  }

  /**
   * Starts the waiting executions whose workers are free, in order: one never overtakes an
   * earlier one that wants any of the same workers, so no execution waits for ever.
   */
  private admit(): void {
    const wanted = new Set<string>();
    for (let i = 0; i < this.waiting.length; ) {
      const entry = this.waiting[i]!;
      const free = [...entry.workers].every((w) => !this.held.has(w) && !wanted.has(w));
      for (const w of entry.workers) wanted.add(w);
      if (!free) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      for (const w of entry.workers) this.held.add(w);
      entry.start();
    }
  }

  /** Ends a worker abruptly, as a crash would (for tests and drills). */
  async kill(worker: string): Promise<void> {
    await this.worker(worker).kill();
  }

  /**
   * A worker has started (at first, or in place of one that died): the subclass links it to the
   * others for the data plane, values going worker to worker without passing the coordinator.
   */
  protected joined(_worker: PoolWorker): void {}

  /** The workers running now, by name. */
  protected current(): ReadonlyMap<string, PoolWorker> {
    return this.workers;
  }

  /** A prefix no other plan loaded on this pool uses, for its partition keys. */
  planPrefix(): string {
    return `p${this.nextPlan++}`;
  }

  /** How many times the worker of this name was started: it changes when a dead one is replaced. */
  generation(worker: string): number {
    return this.generations.get(worker) ?? 0;
  }

  /** The workers that died and are not yet replaced. */
  lost(): string[] {
    return [...this.replacing.keys()];
  }

  /** Waits until every worker (of `workers`, if given) that died has been replaced. */
  async settled(workers?: readonly string[]): Promise<void> {
    await Promise.all(workers ? workers.map((w) => this.replacing.get(w)) : this.replacing.values());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.replacing.values());
    await Effect.runPromise(Scope.close(this.scope, Exit.void));
    for (const p of this.pending.values()) p.reject(new KilnError('cancelled', 'the pool was closed'));
    this.pending.clear();
  }

  private async executeNow(
    partitions: readonly ScheduledPartition[],
    fetchCount: number,
    runs: readonly ReadonlyMap<string, WireTensor>[],
    options: ExecuteOptions,
  ): Promise<WireTensor[][]> {
    if (this.closed) throw new KilnError('cancelled', 'the pool is closed');
    // Only the workers this step runs on: another one may be waiting for a replacement that a
    // job which went on without it does not need.
    await this.settled([...new Set(partitions.map((p) => p.worker))]);
    const ids = runs.map(() => this.nextRun++);
    if (runs.length === 0) return [];
    const body = Effect.callback<WireTensor[][], RunFailed>((resume) => {
      const results: WireTensor[][] = new Array(runs.length);
      let remaining = runs.length;
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (effect: Effect.Effect<WireTensor[][], RunFailed>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resume(effect);
      };
      const execution: Execution = {
        runs: new Set(ids),
        started: new Map(),
        lastEnd: new Map(),
        ...(options.trace ? { trace: options.trace } : {}),
        complete: (run, fetches) => {
          results[ids.indexOf(run)] = [...fetches];
          if (--remaining === 0) settle(Effect.succeed(results));
        },
        // The runs of one execution are one step: they all fail together, the first says why.
        fail: (run, failure) => {
          const told = failure.kind !== 'cancelled' && failure.kind !== 'bad-request';
          const worker = 'worker' in failure ? failure.worker : undefined;
          const partition = 'partition' in failure ? (failure.partition ?? undefined) : undefined;
          const story = told ? this.coordinator.tell(run, worker, partition) : '';
          settle(Effect.fail(new RunFailed({ failure, ...(story ? { story } : {}) })));
        },
      };
      for (const id of ids) this.executions.set(id, execution);
      // The runs of one call are one step: their variable updates take effect together or not at all.
      this.handle({
        type: 'execute',
        partitions,
        fetchCount,
        runs: runs.map((feeds, k) => ({ run: ids[k]!, feeds })),
      });
      // The shell only keeps the clock; what a timeout means (who hung, who is replaced) is the
      // coordinator's decision.
      const millis = options.timeoutMillis;
      // Past what a timer can hold (about 24.8 days) Node would fire at once: that is no limit.
      if (millis !== undefined && millis <= MAX_TIMER_MILLIS && !settled)
        timer = setTimeout(() => this.handle({ type: 'timeout', run: ids[0]!, millis }), millis);
      // Interrupted (the caller's signal): the runs still going are cancelled, and released on the
      // workers. What workers are running now finishes there; its results are dropped.
      return Effect.sync(() => {
        clearTimeout(timer);
        for (const id of ids) this.handle({ type: 'cancel', run: id, message: 'cancelled' });
      });
    });
    try {
      return await run(body, options.signal);
    } finally {
      for (const id of ids) this.executions.delete(id);
    }
  }

  /** What the coordinator decided about these subjects (worker names, `run:N`, partition keys). */
  async story(...subjects: string[]): Promise<StoryEntry[]> {
    return this.coordinator.story(...subjects);
  }

  /** The worker a variable lives on, once a plan placed it. */
  home(variable: string): string | undefined {
    return this.coordinator.home(variable);
  }

  /**
   * What each worker's device can run, in the order of `names`, once those of `workers` (all, if
   * not given) are settled; a worker still being replaced answers as it did before it died.
   */
  async capabilities(workers?: readonly string[]): Promise<DeviceCapabilities[]> {
    await this.settled(workers);
    return this.names.map((name) => this.workers.get(name)?.device ?? this.reported.get(name)!);
  }

  /** Every variable's home, by name. */
  homes(): [variable: string, worker: string][] {
    return this.coordinator.allHomes();
  }

  async dropVariables(names: readonly string[]): Promise<void> {
    const byWorker = new Map<string, string[]>();
    for (const name of names) {
      const home = this.coordinator.home(name);
      if (home !== undefined) byWorker.set(home, [...(byWorker.get(home) ?? []), name]);
    }
    // A worker that died took its variables with it: nothing to free there.
    await Promise.all(
      [...byWorker].map(([worker, held]) =>
        this.coordinator.up(worker)
          ? this.request(worker, { t: 'dropVariables', names: held }, 'drop variables')
          : undefined,
      ),
    );
    this.handle({ type: 'dropped', variables: [...byWorker.values()].flat() });
  }

  /** Records where a plan's partitions and variables went, and why. */
  placed(record: PlacementRecord): void {
    this.handle({ type: 'placed', ...record });
  }

  /** Stamps an event, hands it to the coordinator, and carries out what it decides. */
  private handle(event: Event): void {
    const stimulus = `${event.type}-${++this.stimuli}`;
    this.apply(this.coordinator.handle({ ...event, stimulus, at: Date.now() } as ClusterEvent<WireTensor>));
  }

  private apply(instructions: readonly Instruction<WireTensor>[]): void {
    for (const i of instructions) {
      switch (i.type) {
        case 'dispatch': {
          const w = this.workers.get(i.worker);
          this.executions.get(i.run)?.started.set(`${i.run}/${i.partition}`, performance.now());
          if (w?.alive) w.send({ t: 'run', run: i.run, partition: i.partition, args: i.args });
          else this.handle({ type: 'exited', worker: i.worker, message: 'not running' });
          break;
        }
        case 'commit':
        case 'release':
          this.workers.get(i.worker)?.send({ t: i.type, runs: i.runs });
          break;
        case 'complete':
          this.executions.get(i.run)?.complete(i.run, i.fetches);
          break;
        case 'fail':
          this.executions.get(i.run)?.fail(i.run, i.failure);
          break;
        case 'replace-worker':
          this.replace(i.worker);
          break;
      }
    }
  }

  private worker(name: string): PoolWorker {
    const w = this.workers.get(name);
    if (!w)
      throw new KilnError(
        'invalid-argument',
        `no worker named '${name}' (workers: ${this.names.join(', ')})`,
      );
    return w;
  }

  private spawn(name: string): Effect.Effect<void, ClusterError> {
    const listener: WorkerListener = {
      message: (worker, message) => this.onMessage(worker, message),
      exit: (worker, reason) => this.onExit(worker, reason),
    };
    return Effect.acquireRelease(this.startWorker(name, listener), (worker) =>
      Effect.promise(() => worker.stop()),
    ).pipe(
      Effect.tap((worker) =>
        Effect.sync(() => {
          this.workers.set(name, worker);
          this.reported.set(name, worker.device);
          this.generations.set(name, this.generation(name) + 1);
          this.handle({
            type: 'joined',
            worker: name,
            generation: this.generation(name),
            device: describeDevice(worker.device),
            ...(worker.peerUrl ? { peer: worker.peerUrl } : {}),
          });
          this.joined(worker);
        }),
      ),
      Effect.asVoid,
      Scope.provide(this.scope),
    );
  }

  /**
   * A worker died or hung: it is ended if it still runs (a hung kernel never returns, so nothing
   * short of that frees it), and a fresh one takes its name (its partitions and variables must be
   * loaded again): a new thread, or the next remote worker to connect.
   */
  private replace(name: string): void {
    if (this.closed || this.replacing.has(name)) return;
    const old = this.workers.get(name);
    const done = (async () => {
      if (old?.alive) await old.kill();
      await run(this.spawn(name));
    })()
      .catch(() => undefined)
      .finally(() => this.replacing.delete(name));
    this.replacing.set(name, done);
  }

  private onMessage(worker: PoolWorker, message: FromWorker): void {
    const request = 'request' in message ? message.request : null;
    if (request !== null) {
      const p = this.pending.get(request);
      this.pending.delete(request);
      p?.resolve(message);
      return;
    }
    if (message.t !== 'done' && message.t !== 'failed') return;
    // Results of a run that is not under way (one cancelled, or a forged message) are dropped by
    // the coordinator, and told in its story.
    if (message.run === null) return;
    if (message.t === 'done') {
      const exec = this.executions.get(message.run);
      if (exec?.trace && exec.runs.has(message.run)) {
        // A worker runs what it holds in order: a partition sent ahead starts when the one
        // before it ends there, not when it was sent.
        const end = performance.now();
        const sent = exec.started.get(`${message.run}/${message.partition}`) ?? end;
        const start = Math.max(sent, exec.lastEnd.get(worker.name) ?? sent);
        exec.lastEnd.set(worker.name, end);
        exec.trace.push({
          worker: worker.name,
          run: message.run,
          partition: message.partition,
          start,
          end,
          seconds: message.seconds,
        });
      }
      this.handle({
        type: 'done',
        worker: worker.name,
        run: message.run,
        partition: message.partition,
        results: message.results,
      });
    } else {
      this.handle({
        type: 'failed',
        worker: worker.name,
        run: message.run,
        partition: message.partition ?? '?',
        code: message.error.code,
        message: message.error.message,
      });
    }
  }

  private onExit(worker: PoolWorker, reason: string): void {
    // Requests in flight to it will not be answered.
    for (const p of this.pending.values())
      p.reject(new KilnError('worker', `worker '${worker.name}' died: ${reason}`));
    this.pending.clear();
    // A worker already replaced (ended by the replacement itself) is no news.
    if (this.workers.get(worker.name) !== worker) return;
    this.workers.delete(worker.name);
    // The coordinator decides what a worker's end means: the runs that needed it fail, and a fresh
    // worker takes its name.
    this.handle({ type: 'exited', worker: worker.name, message: reason });
  }
}

/** Runs an effect at the Promise edge: typed failures become KilnErrors; a cancel, 'cancelled'. */
export async function run<A>(effect: Effect.Effect<A, ClusterError>, signal?: AbortSignal): Promise<A> {
  const exit = await Effect.runPromiseExit(effect, signal ? { signal } : undefined);
  if (Exit.isSuccess(exit)) return exit.value;
  const failure = exit.cause.reasons.find((r) => r._tag === 'Fail');
  if (failure && failure._tag === 'Fail') throw toKilnError(failure.error);
  if (signal?.aborted) throw new KilnError('cancelled', 'the run was cancelled by its caller');
  const die = exit.cause.reasons.find((r) => r._tag === 'Die');
  if (die && die._tag === 'Die') throw die.defect;
  throw new KilnError('cancelled', 'the run was interrupted');
}

/** A worker's device in a few words, for the coordinator's story. */
function describeDevice(d: PoolWorker['device']): string {
  return `${d.kind} device '${d.name}' (${d.ops.length} ops)`;
}
