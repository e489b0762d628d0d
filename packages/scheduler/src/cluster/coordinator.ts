import { failureMessage } from './errors.js';
import {
  type Instruction,
  type RunEvent,
  type RunFailure,
  RunScheduler,
  type ScheduledPartition,
} from './run-scheduler.js';
import { formatStory, type StoryEntry, StoryLog } from './story.js';

/**
 * The cluster's state machine, long-lived and with no I/O: which workers are up and what each
 * holds, where each variable lives, and the runs under way (each execution's runs are scheduled by
 * a RunScheduler it owns). The shells (WorkerPool over threads or sockets) only feed it events and
 * carry out its instructions; policy is decided here: a worker that leaves is replaced, the runs
 * that needed it fail, a variable keeps the worker it was first placed on.
 *
 * Every event carries a stimulus id; every decision is logged against it (story.ts), so why a
 * partition went where it did, or why a run failed, can be told after the fact.
 */

interface Stimulus {
  /** Unique per event: the shell numbers them (`done-812`). */
  readonly stimulus: string;
  /** When the event arrived, on the shell's clock (milliseconds since the epoch). */
  readonly at: number;
}

/** A partition as placed, with why its nodes went to its worker. */
export interface PlacedPartition {
  readonly key: string;
  readonly worker: string;
  readonly nodes: number;
  /** The distinct reasons the placer gave for its nodes, most common first. */
  readonly reasons: readonly string[];
}

export type ClusterEvent<T> = Stimulus &
  (
    | {
        readonly type: 'joined';
        readonly worker: string;
        readonly generation: number;
        /** Its device, as it described it: `cpu (backend-cpu, 8 ops)`. */
        readonly device: string;
        /** Where it takes its peers' pushed values, if it takes them over a socket. */
        readonly peer?: string;
      }
    | { readonly type: 'exited'; readonly worker: string; readonly message: string }
    /** A plan was placed on the workers: its partitions, and the homes of its variables. */
    | {
        readonly type: 'placed';
        readonly plan: string;
        readonly partitions: readonly PlacedPartition[];
        readonly variables: readonly {
          readonly name: string;
          readonly worker: string;
          readonly reason: string;
        }[];
      }
    /** Variables were freed on their workers (a finished job's): they have no home any more. */
    | { readonly type: 'dropped'; readonly variables: readonly string[] }
    | { readonly type: 'loaded'; readonly worker: string; readonly partitions: readonly string[] }
    | { readonly type: 'unloaded'; readonly worker: string; readonly partitions: readonly string[] }
    /** A plan run once per feed set, as one step. */
    | {
        readonly type: 'execute';
        readonly partitions: readonly ScheduledPartition[];
        readonly fetchCount: number;
        readonly runs: readonly { readonly run: number; readonly feeds: ReadonlyMap<string, T> }[];
      }
    | Exclude<RunEvent<T>, { type: 'submit' | 'exited' }>
  );

interface Member {
  generation: number;
  up: boolean;
  device: string;
  /** Partitions loaded on it (by key). */
  readonly partitions: Set<string>;
}

export class Coordinator<T> {
  /**
   * `dispatchAhead`: how many partitions a worker may hold at once, a partition going out as soon
   * as those producing its inputs have (see RunScheduler). Default 1: each once its inputs exist.
   */
  constructor(private readonly options: { readonly dispatchAhead?: number } = {}) {}

  private readonly members = new Map<string, Member>();
  private readonly homes = new Map<string, string>();
  private readonly log = new StoryLog();
  /**
   * The executions under way, each with its scheduler, its workers and its runs not yet ended.
   * Executions on disjoint workers go on side by side (two jobs, one per worker); one that wants a
   * worker another holds is refused (the shells queue them).
   */
  private readonly executions = new Set<Execution<T>>();
  /** Each open run's execution. */
  private readonly byRun = new Map<number, Execution<T>>();

  handle(event: ClusterEvent<T>): Instruction<T>[] {
    const out: Instruction<T>[] = [];
    const decisions: string[] = [];
    /** What is told after the instructions: what a worker took with it. */
    const after: string[] = [];
    const subjects = new Set<string>();
    let lasting = false;
    let summary: string;
    switch (event.type) {
      case 'joined': {
        lasting = true;
        subjects.add(event.worker);
        const before = this.members.get(event.worker);
        this.members.set(event.worker, {
          generation: event.generation,
          up: true,
          device: event.device,
          partitions: new Set(),
        });
        summary = `${event.worker} joined (generation ${event.generation}): ${event.device}${event.peer ? `, peers push to ${event.peer}` : ''}`;
        if (before && !before.up) decisions.push(`${event.worker} is back: plans must be loaded on it again`);
        break;
      }
      case 'exited': {
        lasting = true;
        subjects.add(event.worker);
        summary = `${event.worker} exited: ${event.message}`;
        for (const execution of [...this.executions])
          if (execution.workers.has(event.worker))
            out.push(
              ...this.runEvent(
                execution,
                { type: 'exited', worker: event.worker, message: event.message },
                after,
              ),
            );
        this.down(event.worker, out, after);
        break;
      }
      case 'placed': {
        lasting = true;
        subjects.add(event.plan);
        summary = `plan ${event.plan} placed`;
        for (const p of event.partitions) {
          subjects.add(p.key).add(p.worker);
          decisions.push(
            `${p.key} on ${p.worker}: ${p.nodes} node${p.nodes === 1 ? '' : 's'} (${p.reasons.slice(0, 2).join('; ')})`,
          );
        }
        for (const v of event.variables) {
          subjects.add(v.name).add(v.worker);
          const home = this.homes.get(v.name);
          if (home === undefined) {
            this.homes.set(v.name, v.worker);
            decisions.push(`variable '${v.name}' lives on ${v.worker} (${v.reason})`);
          } else if (home !== v.worker) {
            decisions.push(`variable '${v.name}' lives on ${home}, yet this plan put it on ${v.worker}`);
          }
        }
        break;
      }
      case 'dropped': {
        for (const v of event.variables) {
          subjects.add(v);
          const home = this.homes.get(v);
          if (home !== undefined) decisions.push(`variable '${v}' no longer lives on ${home}`);
          this.homes.delete(v);
        }
        summary = `${event.variables.length} variable(s) dropped`;
        break;
      }
      case 'loaded':
      case 'unloaded': {
        subjects.add(event.worker);
        for (const key of event.partitions) subjects.add(key);
        const member = this.members.get(event.worker);
        for (const key of event.partitions)
          if (event.type === 'loaded') member?.partitions.add(key);
          else member?.partitions.delete(key);
        summary = `${event.worker} ${event.type} ${event.partitions.join(', ')}`;
        break;
      }
      case 'execute': {
        const ids = event.runs.map((r) => r.run);
        for (const id of ids) subjects.add(`run:${id}`);
        summary = `execute runs ${ids.join(', ')} (${event.partitions.length} partitions)`;
        const refuse = (failure: RunFailure) => {
          for (const run of ids) out.push({ type: 'fail', run, failure });
        };
        const down = event.partitions.find((p) => !this.members.get(p.worker)?.up);
        const workers = new Set(event.partitions.map((p) => p.worker));
        const taken = [...workers].find((w) => [...this.executions].some((e) => e.workers.has(w)));
        if (taken !== undefined)
          refuse({ kind: 'bad-request', message: `another execution is under way on ${taken}` });
        else if (down)
          refuse({
            kind: 'worker-exited',
            worker: down.worker,
            partition: null,
            message: `worker '${down.worker}' is not up; wait for its replacement and load the plan on it`,
          });
        else {
          const execution: Execution<T> = {
            scheduler: new RunScheduler<T>(event.partitions, event.fetchCount, this.options),
            open: new Set(ids),
            workers,
          };
          this.executions.add(execution);
          for (const id of ids) this.byRun.set(id, execution);
          out.push(...this.runEvent(execution, { type: 'submit', runs: event.runs }, after));
        }
        break;
      }
      default: {
        subjects.add(`run:${event.run}`);
        if ('worker' in event) subjects.add(event.worker);
        if ('partition' in event) subjects.add(event.partition);
        summary = describeRunEvent(event);
        const execution = this.byRun.get(event.run);
        if (execution) out.push(...this.runEvent(execution, event, after));
        else decisions.push('dropped: not a run under way');
      }
    }
    for (const i of out) {
      decisions.push(describeInstruction(i));
      if ('worker' in i) subjects.add(i.worker);
      if ('run' in i) subjects.add(`run:${i.run}`);
      if ('runs' in i) for (const r of i.runs) subjects.add(`run:${r}`);
      if (i.type === 'dispatch') subjects.add(i.partition);
      if (i.type === 'fail') lasting = true;
    }
    decisions.push(...after);
    this.log.add(
      { stimulus: event.stimulus, at: event.at, event: summary, decisions, subjects: [...subjects] },
      lasting,
    );
    return out;
  }

  /** The worker a variable lives on, once a plan has placed it. */
  home(variable: string): string | undefined {
    return this.homes.get(variable);
  }

  /** Every variable's home, by name. */
  allHomes(): [variable: string, worker: string][] {
    return [...this.homes];
  }

  /** Whether the worker is up (joined, and not exited since). */
  up(worker: string): boolean {
    return this.members.get(worker)?.up ?? false;
  }

  /** Runs of the executions under way not yet ended. */
  get active(): number {
    return this.byRun.size;
  }

  /** What happened to these subjects (worker names, `run:N`, partition keys, variables). */
  story(...subjects: string[]): StoryEntry[] {
    return this.log.story(subjects);
  }

  /**
   * A run's story, printable, as an error about it carries it: why the partition it failed in went
   * where it did, what the run was sent and returned, and what befell the worker meanwhile.
   */
  tell(run: number, worker?: string, partition?: string, lines = 12): string {
    const own = this.log.story([`run:${run}`]);
    const since = own[0]?.seq ?? Number.POSITIVE_INFINITY;
    const placement = partition
      ? this.log
          .story([partition])
          .filter((e) => e.stimulus.startsWith('placed-'))
          .slice(-1)
      : [];
    const meanwhile = worker ? this.log.story([worker]).filter((e) => e.seq > since) : [];
    const entries = [...new Map([...placement, ...own, ...meanwhile].map((e) => [e.seq, e])).values()];
    return formatStory(entries.sort((a, b) => a.seq - b.seq).slice(-lines));
  }

  /** Feeds an execution's scheduler, ends it once its every run has ended, and vets its orders. */
  private runEvent(execution: Execution<T>, event: RunEvent<T>, told: string[]): Instruction<T>[] {
    const out: Instruction<T>[] = [];
    for (const i of execution.scheduler.handle(event)) {
      if (i.type === 'complete' || i.type === 'fail') {
        execution.open.delete(i.run);
        this.byRun.delete(i.run);
      }
      // A worker the scheduler gives up on (dead, or hung past a timeout) is taken down here, once.
      if (i.type === 'replace-worker') {
        this.down(i.worker, out, told);
        continue;
      }
      out.push(i);
    }
    if (execution.open.size === 0) this.executions.delete(execution);
    return out;
  }

  /** The worker is gone with what it held; a fresh one is to take its name. */
  private down(worker: string, out: Instruction<T>[], told: string[]): void {
    const member = this.members.get(worker);
    if (!member?.up) return;
    member.up = false;
    const variables = [...this.homes].filter(([, w]) => w === worker).map(([v]) => `'${v}'`);
    const lost = [
      ...(member.partitions.size > 0 ? [`partitions ${[...member.partitions].join(', ')}`] : []),
      ...(variables.length > 0 ? [`variables ${variables.join(', ')}`] : []),
    ];
    member.partitions.clear();
    if (lost.length > 0) told.push(`lost with it: ${lost.join('; ')}`);
    out.push({ type: 'replace-worker', worker });
  }
}

interface Execution<T> {
  readonly scheduler: RunScheduler<T>;
  readonly open: Set<number>;
  readonly workers: ReadonlySet<string>;
}

function describeRunEvent(
  event: Exclude<
    ClusterEvent<unknown>,
    { type: 'joined' | 'exited' | 'placed' | 'dropped' | 'loaded' | 'unloaded' | 'execute' }
  >,
): string {
  switch (event.type) {
    case 'done':
      return `${event.worker} finished ${event.partition} of run ${event.run}`;
    case 'failed':
      return `${event.worker} failed ${event.partition} of run ${event.run}: ${event.message}`;
    case 'cancel':
      return `run ${event.run} cancelled: ${event.message}`;
    case 'timeout':
      return `run ${event.run} timed out after ${event.millis} ms`;
  }
}

function describeInstruction(i: Instruction<unknown>): string {
  switch (i.type) {
    case 'dispatch':
      return `send ${i.partition} of run ${i.run} to ${i.worker}`;
    case 'commit':
      return `commit run ${i.runs.join(', ')} on ${i.worker}`;
    case 'release':
      return `release run ${i.runs.join(', ')} on ${i.worker}`;
    case 'complete':
      return `run ${i.run} complete`;
    case 'fail':
      return `run ${i.run} failed: ${failureMessage(i.failure)}`;
    case 'replace-worker':
      return `replace ${i.worker}`;
  }
}
