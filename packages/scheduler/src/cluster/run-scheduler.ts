/**
 * The runs of one execution (a plan run once per feed set, as one step) as a state machine with
 * no I/O, in the manner of Dask's worker state machine. The Coordinator (coordinator.ts), the
 * cluster's long-lived state machine, makes one per execution and feeds it the events of its runs
 * (submitted, a partition done or failed, a worker gone, a cancel, a timeout); it returns
 * instructions (send a partition to a worker, commit or release what runs staged there, finish or
 * fail a run, replace a worker). Everything about ordering and failure within a step lives here,
 * so it is tested exhaustively without threads or clocks; tensors are opaque values of type T.
 *
 * A step is one or more runs whose variable updates take effect together. Workers stage a run's
 * assigns instead of storing them; once every run of a step has finished, and every step before it
 * has ended, the scheduler commits the step on each worker that staged something. A step that
 * fails or is cancelled is released everywhere it ran, so it changes no variable anywhere.
 */

/** A partition as the coordinator schedules it (lowered from a PartitionPlan). */
export interface ScheduledPartition {
  readonly key: string;
  readonly worker: string;
  readonly stage: number;
  /** Which independent part of its stage on its worker (PartitionPlan.part); 0 by default. */
  readonly part?: number;
  /** Its run-time arguments, in order: a feed, or a value another partition returns. */
  readonly args: readonly ({ readonly feed: string } | { readonly value: string })[];
  /** What each returned result is: values for other partitions (by key) and fetches (by index). */
  readonly returns: readonly { readonly values: readonly string[]; readonly fetches: readonly number[] }[];
  /**
   * Values that stay on the worker between partitions of a run: those it keeps for later
   * partitions, and those it waits for (kept earlier by a partition on the same worker). They are
   * ordering, not data, to the coordinator.
   */
  readonly keeps?: readonly string[];
  readonly waits?: readonly string[];
  /** Variables it reads and assigns on its worker: runs that overlap must not reorder these. */
  readonly reads: readonly string[];
  readonly writes: readonly string[];
}

/** The most partitions a worker holds at once when they are sent ahead (see hasRoom). */
export const MAX_HELD = 64;

export type RunFailure =
  | {
      readonly kind: 'partition-failed';
      readonly worker: string;
      readonly partition: string;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly kind: 'worker-exited';
      readonly worker: string;
      readonly partition: string | null;
      readonly message: string;
    }
  | {
      readonly kind: 'timeout';
      readonly millis: number;
      /** The workers it was waiting for, each with the partition it was still running there. */
      readonly stuck: readonly { readonly worker: string; readonly partition: string }[];
    }
  | { readonly kind: 'cancelled'; readonly message: string }
  | { readonly kind: 'bad-request'; readonly message: string };

export type RunEvent<T> =
  /** A step: runs whose variable updates take effect together, in this order, or not at all. */
  | {
      readonly type: 'submit';
      readonly runs: readonly { readonly run: number; readonly feeds: ReadonlyMap<string, T> }[];
    }
  | {
      readonly type: 'done';
      readonly worker: string;
      readonly run: number;
      readonly partition: string;
      readonly results: readonly T[];
    }
  | {
      readonly type: 'failed';
      readonly worker: string;
      readonly run: number;
      readonly partition: string;
      readonly code: string;
      readonly message: string;
    }
  | { readonly type: 'exited'; readonly worker: string; readonly message: string }
  | { readonly type: 'cancel'; readonly run: number; readonly message: string }
  /**
   * The run's time is up (the shell keeps the clock). Its step fails, and the workers it was
   * waiting for are taken for hung: they are replaced, as if they had died.
   */
  | { readonly type: 'timeout'; readonly run: number; readonly millis: number };

export type Instruction<T> =
  | {
      readonly type: 'dispatch';
      readonly worker: string;
      readonly run: number;
      readonly partition: string;
      readonly args: readonly T[];
    }
  /** The variable values these runs staged on the worker take effect. */
  | { readonly type: 'commit'; readonly worker: string; readonly runs: readonly number[] }
  /** These runs ended without success: the worker drops what it kept and staged for them. */
  | { readonly type: 'release'; readonly worker: string; readonly runs: readonly number[] }
  | { readonly type: 'complete'; readonly run: number; readonly fetches: readonly T[] }
  | { readonly type: 'fail'; readonly run: number; readonly failure: RunFailure }
  /** The worker is gone to the coordinator: end its thread if it still runs, start a fresh one. */
  | { readonly type: 'replace-worker'; readonly worker: string };

interface Step<T> {
  readonly runs: readonly number[];
  /** Fetches of its runs that have finished every partition, waiting for the step to commit. */
  readonly finished: Map<number, readonly T[]>;
  /** Workers a partition of it was sent to: they may hold kept or staged values of its runs. */
  readonly sent: Set<string>;
  /** Workers where a partition of it that assigns variables has finished: they staged values. */
  readonly staged: Set<string>;
  /** Variables its sent partitions read and assign. */
  readonly reads: Set<string>;
  readonly writes: Set<string>;
}

interface RunState<T> {
  readonly id: number;
  readonly step: Step<T>;
  readonly feeds: ReadonlyMap<string, T>;
  readonly values: Map<string, T>;
  /**
   * Keys of values kept on workers or pushed to them: once their producer has finished, or, when
   * dispatching ahead, once it has been sent (its consumer then waits for the value on its worker).
   */
  readonly kept: Set<string>;
  readonly fetched: (T | undefined)[];
  readonly dispatched: Set<number>;
  readonly finished: Set<number>;
}

export class RunScheduler<T> {
  private readonly partitions: readonly ScheduledPartition[];
  /**
   * Runs with partitions still to finish, in submission order (the order overlapping runs keep on
   * each partition).
   */
  private readonly runs = new Map<number, RunState<T>>();
  /** Steps not yet committed or failed, in submission order (the order they commit in). */
  private readonly steps: Step<T>[] = [];
  /** Per worker, the partitions sent to it and not yet finished, in the order it runs them. */
  private readonly busy = new Map<string, { run: number; partition: number }[]>();
  /** How many partitions a worker may be sent before the first has finished. */
  private readonly depth: number;
  /** The partition (by index) that keeps or pushes each value key. */
  private readonly producers: ReadonlyMap<string, number>;
  private readonly dead = new Set<string>();
  /** conflicts[i]: partitions that must not pass partition i's earlier instances. */
  private readonly conflicts: readonly (readonly number[])[];
  private readonly fetchCount: number;

  /**
   * `dispatchAhead`: how many partitions a worker may hold at once (default 1: one, sent when its
   * inputs are all finished). Above 1, a partition is sent as soon as the partitions producing
   * its inputs have been sent, and waits on its worker for the values to arrive from its peers,
   * as TensorFlow launches every partition of a step at once to rendezvous on its recvs: a chain
   * of partitions across workers then costs one push per link, not a round trip to the
   * coordinator. Deadlock-free because workers run what they are sent in order and a partition
   * is only ever sent after those producing its inputs.
   */
  constructor(
    partitions: readonly ScheduledPartition[],
    fetchCount: number,
    options: { readonly dispatchAhead?: number } = {},
  ) {
    this.depth = Math.max(1, Math.floor(options.dispatchAhead ?? 1));
    // A worker is sent its partitions in this order: a stage's parts in graph order, which is
    // the order their values are sent in.
    this.partitions = [...partitions].sort(
      (a, b) =>
        a.stage - b.stage || (a.part ?? 0) - (b.part ?? 0) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
    this.fetchCount = fetchCount;
    this.producers = new Map(
      this.partitions.flatMap((p, i) => (p.keeps ?? []).map((key) => [key, i] as const)),
    );
    this.conflicts = this.partitions.map((p, i) =>
      this.partitions.flatMap((q, j) => (i === j || conflict(p, q) ? [j] : [])),
    );
    const covered = new Set(this.partitions.flatMap((p) => p.returns.flatMap((r) => r.fetches)));
    for (let f = 0; f < fetchCount; f++)
      if (!covered.has(f)) throw new Error(`coordinator: fetch ${f} is returned by no partition`);
  }

  /** Runs submitted and not yet ended (completed or failed). */
  get active(): number {
    return this.steps.reduce((n, s) => n + s.runs.length, 0);
  }

  handle(event: RunEvent<T>): Instruction<T>[] {
    const out: Instruction<T>[] = [];
    switch (event.type) {
      case 'submit':
        this.submit(event.runs, out);
        break;
      case 'done':
        this.done(event, out);
        break;
      case 'failed':
        this.release(event.worker, event.run);
        this.fail(
          event.run,
          {
            kind: 'partition-failed',
            worker: event.worker,
            partition: event.partition,
            code: event.code,
            message: event.message,
          },
          out,
        );
        break;
      case 'exited':
        this.exited(event.worker, event.message, out);
        break;
      case 'cancel':
        this.fail(event.run, { kind: 'cancelled', message: event.message }, out);
        break;
      case 'timeout':
        this.timeout(event.run, event.millis, out);
        break;
    }
    this.commitReady(out);
    this.schedule(out);
    return out;
  }

  private submit(
    runs: readonly { readonly run: number; readonly feeds: ReadonlyMap<string, T> }[],
    out: Instruction<T>[],
  ): void {
    const refuse = (failure: RunFailure) => {
      for (const { run } of runs) out.push({ type: 'fail', run, failure });
    };
    const ids = runs.map((r) => r.run);
    const taken = ids.find((id, i) => ids.indexOf(id) !== i || this.stepOf(id));
    if (taken !== undefined) {
      refuse({ kind: 'bad-request', message: `run ${taken} was already submitted` });
      return;
    }
    for (const { feeds } of runs) {
      const missing = [
        ...new Set(
          this.partitions.flatMap((p) =>
            p.args.flatMap((a) => ('feed' in a && !feeds.has(a.feed) ? [a.feed] : [])),
          ),
        ),
      ];
      if (missing.length > 0) {
        refuse({
          kind: 'bad-request',
          message: `no value fed for ${missing.map((m) => `'${m}'`).join(', ')}`,
        });
        return;
      }
    }
    const down = this.partitions.find((p) => this.dead.has(p.worker));
    if (down) {
      refuse({
        kind: 'worker-exited',
        worker: down.worker,
        partition: null,
        message: `worker '${down.worker}' is gone; reload the plan on its replacement`,
      });
      return;
    }
    const step: Step<T> = {
      runs: ids,
      finished: new Map(),
      sent: new Set(),
      staged: new Set(),
      reads: new Set(),
      writes: new Set(),
    };
    this.steps.push(step);
    for (const { run, feeds } of runs) {
      const state: RunState<T> = {
        id: run,
        step,
        feeds,
        values: new Map(),
        kept: new Set(),
        fetched: new Array<T | undefined>(this.fetchCount).fill(undefined),
        dispatched: new Set(),
        finished: new Set(),
      };
      this.runs.set(run, state);
      if (this.partitions.length === 0) this.finishIfDone(state);
    }
  }

  private done(event: Extract<RunEvent<T>, { type: 'done' }>, out: Instruction<T>[]): void {
    // Results from a worker that is not running that run (a stale or forged message) are dropped:
    // they must not free a worker busy with something else, nor stand in for the real results.
    const busy = this.busy.get(event.worker)?.[0];
    if (!this.release(event.worker, event.run) || !busy) return;
    const run = this.runs.get(event.run);
    // A late result of a run that already failed or was cancelled: dropped.
    if (!run) return;
    const index = busy.partition;
    const p = this.partitions[index]!;
    if (p.key !== event.partition || p.returns.length !== event.results.length) {
      this.fail(
        event.run,
        {
          kind: 'partition-failed',
          worker: event.worker,
          partition: event.partition,
          code: 'protocol',
          message:
            p.key !== event.partition
              ? `returned results for partition ${event.partition} while running ${p.key}`
              : `returned ${event.results.length} results for a partition with ${p.returns.length} results`,
        },
        out,
      );
      return;
    }
    run.finished.add(index);
    if (p.writes.length > 0) run.step.staged.add(event.worker);
    if (this.depth === 1) for (const key of p.keeps ?? []) run.kept.add(key);
    p.returns.forEach((r, k) => {
      const t = event.results[k]!;
      for (const key of r.values) run.values.set(key, t);
      for (const f of r.fetches) run.fetched[f] = t;
    });
    this.finishIfDone(run);
  }

  /** A run whose partitions have all finished waits, fetches in hand, for its step to commit. */
  private finishIfDone(run: RunState<T>): void {
    if (run.finished.size !== this.partitions.length) return;
    this.runs.delete(run.id);
    run.step.finished.set(run.id, run.fetched as T[]);
  }

  /**
   * Commits finished steps in submission order: a later step may have read what an earlier one
   * staged, so it must not take effect before it (nor at all if the earlier one fails).
   */
  private commitReady(out: Instruction<T>[]): void {
    for (let step = this.steps[0]; step; step = this.steps[0]) {
      if (step.finished.size !== step.runs.length) return;
      this.steps.shift();
      for (const worker of [...step.staged].sort()) out.push({ type: 'commit', worker, runs: step.runs });
      for (const run of step.runs) out.push({ type: 'complete', run, fetches: step.finished.get(run)! });
    }
  }

  private exited(worker: string, message: string, out: Instruction<T>[]): void {
    if (this.dead.has(worker)) return;
    this.dead.add(worker);
    const inFlight = this.busy.get(worker)?.[0];
    this.busy.delete(worker);
    // Steps that still need the worker cannot finish: its partitions and variables went with it.
    // Nor can steps that staged values there: those values went with it too.
    for (const step of [...this.steps]) {
      if (!this.needs(step, worker) && !step.staged.has(worker)) continue;
      this.failStep(
        step,
        (run) => ({
          kind: 'worker-exited',
          worker,
          partition: inFlight?.run === run ? this.partitions[inFlight.partition]!.key : null,
          message,
        }),
        out,
      );
    }
    out.push({ type: 'replace-worker', worker });
  }

  /**
   * The run's step fails with a timeout naming what it waited for: the workers running its
   * partitions, and those still running a partition of a run that already ended while this step
   * needs them. Both are taken for hung and replaced; the step's own state says nothing of why a
   * kernel does not return, so a worker is never trusted to come back from one.
   */
  private timeout(id: number, millis: number, out: Instruction<T>[]): void {
    const step = this.stepOf(id);
    if (!step) return;
    // A worker counts as stuck by what it is running: the first partition it holds, unless that
    // partition is still waiting for a value its peers have not produced (then its producer is).
    const stuck = [...this.busy]
      .flatMap(([worker, queue]) => (queue[0] && this.started(queue[0]) ? [[worker, queue[0]] as const] : []))
      .filter(([worker, b]) => step.runs.includes(b.run) || (!this.stepOf(b.run) && this.needs(step, worker)))
      .map(([worker, b]) => ({ worker, partition: this.partitions[b.partition]!.key }))
      .sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
    this.failStep(step, () => ({ kind: 'timeout', millis, stuck }), out);
    for (const { worker, partition } of stuck)
      this.exited(worker, `stopped: still running partition ${partition} when run ${id} timed out`, out);
  }

  private fail(run: number, failure: RunFailure, out: Instruction<T>[]): void {
    const step = this.stepOf(run);
    if (step) this.failStep(step, () => failure, out);
  }

  /**
   * Ends a step without success: each run fails, and every worker it ran on releases what it kept
   * and staged. A later step that read a variable this one staged saw a value that will never
   * exist, so it fails too.
   */
  private failStep(step: Step<T>, failure: (run: number) => RunFailure, out: Instruction<T>[]): void {
    const at = this.steps.indexOf(step);
    if (at < 0) return;
    this.steps.splice(at, 1);
    for (const run of step.runs) {
      this.runs.delete(run);
      out.push({ type: 'fail', run, failure: failure(run) });
    }
    for (const worker of [...step.sent].sort())
      if (!this.dead.has(worker)) out.push({ type: 'release', worker, runs: step.runs });
    for (const later of this.steps.slice(at)) {
      const read = [...later.reads].filter((v) => step.writes.has(v));
      if (read.length === 0) continue;
      const message = `it read ${read.map((v) => `'${v}'`).join(', ')} as updated by run ${step.runs.join(', ')}, which failed`;
      this.failStep(later, () => ({ kind: 'cancelled', message }), out);
    }
  }

  private stepOf(run: number): Step<T> | undefined {
    return this.steps.find((s) => s.runs.includes(run));
  }

  /** Whether a run of the step still has a partition to finish on the worker. */
  private needs(step: Step<T>, worker: string): boolean {
    return step.runs.some((id) => {
      const run = this.runs.get(id);
      return run !== undefined && this.partitions.some((p, i) => p.worker === worker && !run.finished.has(i));
    });
  }

  /** Frees the worker of the partition it runs first, if that is one of that run; says whether it did. */
  private release(worker: string, run: number): boolean {
    const queue = this.busy.get(worker);
    if (!queue?.[0] || queue[0].run !== run) return false;
    queue.shift();
    if (queue.length === 0) this.busy.delete(worker);
    return true;
  }

  /** Whether a partition a worker holds has its inputs, so is running rather than waiting. */
  private started(b: { run: number; partition: number }): boolean {
    const run = this.runs.get(b.run);
    if (!run) return true;
    return (this.partitions[b.partition]!.waits ?? []).every((key) => {
      const producer = this.producers.get(key);
      return producer === undefined || run.finished.has(producer);
    });
  }

  /**
   * Gives every worker with room the first partition instances it may run, lowest run then
   * stage first, up to `dispatchAhead` held at once (see hasRoom).
   */
  private schedule(out: Instruction<T>[]): void {
    const workers = [...new Set(this.partitions.map((p) => p.worker))].sort();
    // Until nothing more can go: a partition sent to one worker lets its consumers on the others
    // go in the same pass, instead of waiting for the next event (a round trip away).
    for (let sent = true; sent; ) {
      sent = false;
      for (const worker of workers) {
        if (this.dead.has(worker)) continue;
        while (this.hasRoom(worker)) {
          const next = this.nextFor(worker);
          if (!next) break;
          const [run, index] = next;
          const p = this.partitions[index]!;
          if (p.args.length > 0 && this.holding(worker) >= this.depth) break;
          this.dispatch(run, index, out);
          sent = true;
        }
      }
    }
  }

  /** The partitions a worker holds that carry arguments (which take its memory while they wait). */
  private holding(worker: string): number {
    return (this.busy.get(worker) ?? []).filter((b) => this.partitions[b.partition]!.args.length > 0).length;
  }

  /**
   * Whether a worker may be sent another partition: up to `dispatchAhead` in all, or, sending
   * ahead, up to MAX_HELD where the ones beyond carry no arguments. Such a partition holds
   * nothing on its worker until its values come (variables, values kept there, pushes from
   * peers), so a stage of many parts (an all-reduce's pieces) can all wait there at once and
   * each run the moment its piece arrives, with no round trip to the coordinator between them.
   */
  private hasRoom(worker: string): boolean {
    const held = this.busy.get(worker)?.length ?? 0;
    return held < this.depth || (this.depth > 1 && held < MAX_HELD);
  }

  private dispatch(run: RunState<T>, index: number, out: Instruction<T>[]): void {
    const p = this.partitions[index]!;
    const worker = p.worker;
    run.dispatched.add(index);
    run.step.sent.add(worker);
    for (const v of p.reads) run.step.reads.add(v);
    for (const v of p.writes) run.step.writes.add(v);
    // Sent ahead, its values are as good as kept: their consumers may be sent too, to wait.
    if (this.depth > 1) for (const key of p.keeps ?? []) run.kept.add(key);
    const queue = this.busy.get(worker) ?? [];
    queue.push({ run: run.id, partition: index });
    this.busy.set(worker, queue);
    const args = p.args.map((a) => ('feed' in a ? run.feeds.get(a.feed)! : run.values.get(a.value)!));
    out.push({ type: 'dispatch', worker, run: run.id, partition: p.key, args });
  }

  private nextFor(worker: string): [RunState<T>, number] | null {
    const earlier: RunState<T>[] = [];
    for (const run of this.runs.values()) {
      for (let i = 0; i < this.partitions.length; i++) {
        const p = this.partitions[i]!;
        if (p.worker !== worker || run.dispatched.has(i)) continue;
        if (!p.args.every((a) => 'feed' in a || run.values.has(a.value))) continue;
        if (!(p.waits ?? []).every((key) => run.kept.has(key))) continue;
        // Overlapping runs keep their order on every partition that shares a variable with this
        // one (this one included), so updates apply in submission order, deterministically.
        if (earlier.some((r) => this.conflicts[i]!.some((j) => !r.dispatched.has(j)))) continue;
        return [run, i];
      }
      earlier.push(run);
    }
    return null;
  }
}

function conflict(p: ScheduledPartition, q: ScheduledPartition): boolean {
  const overlaps = (a: readonly string[], b: readonly string[]) => a.some((x) => b.includes(x));
  return overlaps(p.writes, q.reads) || overlaps(p.writes, q.writes) || overlaps(q.writes, p.reads);
}
