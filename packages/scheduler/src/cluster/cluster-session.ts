import {
  type ConcreteType,
  type Device,
  formatShape,
  Graph,
  type GraphData,
  type HostTensor,
  KilnError,
  type NodeId,
  SymbolicTensor,
  type TensorType,
  type ValueId,
} from '@kiln/ir';
import { type Feeds, resolveFeeds } from '../feeds.js';
import { type Fetches, type FetchResult, flattenFetches } from '../fetches.js';
import { type ExecutionPlan, plan } from '../plan/plan.js';
import type { VariableSession } from '../variable-session.js';
import type { Cluster } from './cluster.js';
import { type LoweredPlan, lowerPlan } from './lower.js';
import { placementRecord } from './placement-record.js';
import type { WireTensor } from './protocol.js';
import { fromWire, toWire, wireType } from './wire-tensor.js';
import type { ExecuteOptions, TraceEntry } from './worker-pool.js';

/**
 * How long a ClusterSession run may take unless told otherwise: generous, since it only has to
 * catch a worker that will never answer (a kernel stuck in a loop), which is otherwise a hang.
 */
export const DEFAULT_CLUSTER_TIMEOUT_MILLIS = 10 * 60_000;

export interface ClusterRunOptions {
  /** Assign tensors (an optimizer's updates) to run for their effect. */
  readonly targets?: readonly SymbolicTensor[];
  readonly signal?: AbortSignal;
  /**
   * Fails the runs with a KilnError('timeout') after this long (default
   * DEFAULT_CLUSTER_TIMEOUT_MILLIS, 10 minutes; Infinity for none), naming the workers they waited
   * for; those are taken for hung and replaced, and their variables are lost until setVariables.
   */
  readonly timeoutMillis?: number;
  /** Receives one entry per partition run. */
  readonly trace?: TraceEntry[];
}

interface Loaded {
  readonly plan: ExecutionPlan;
  readonly lowered: LoweredPlan;
  readonly feedIds: ReadonlyMap<string, ValueId>;
}

/**
 * A Session whose runs execute on a thread pool: each distinct run (fetches, targets, feed
 * shapes) is planned once (placed over the workers, partitioned, memory planned), loaded onto the
 * workers, and then only fed. Variables live on the worker that holds them, in device memory, and
 * keep that home across plans. Several runs of one plan given together overlap (pipelining).
 */
export class ClusterSession implements VariableSession {
  readonly graph: Graph;
  private readonly plans = new Map<string, Loaded>();
  private readonly initialized = new Set<string>();
  /** Variables whose worker died, by the worker's name. */
  private readonly lost = new Map<string, string>();
  private readonly generations = new Map<string, number>();
  private devices: Promise<Device[]> | null = null;
  private closed = false;
  /** `workers()` for the graph as it was at `nodes` nodes (a graph grows; it never shrinks). */
  private used: { nodes: number; workers: readonly string[] | undefined } | null = null;

  constructor(
    graph: Graph | GraphData,
    readonly pool: Cluster,
  ) {
    this.graph = graph instanceof Graph ? graph : Graph.from(graph);
  }

  /**
   * The workers this session runs on, when its graph places every node itself on the cluster's
   * workers (a data-parallel step): it then waits only for their replacements, and goes on while a
   * worker it does not use is being replaced. Otherwise the placer may use any: undefined, all.
   */
  private workers(): readonly string[] | undefined {
    const nodes = this.graph.nodes;
    if (this.used?.nodes !== nodes.length) {
      const named = new Set(nodes.map((n) => n.device));
      const all = [...named].every((d) => d !== undefined && this.pool.names.includes(d));
      this.used = { nodes: nodes.length, workers: all ? [...(named as Set<string>)].sort() : undefined };
    }
    return this.used.workers;
  }

  async run<F extends Fetches>(
    fetches: F,
    feeds?: Feeds,
    options: ClusterRunOptions = {},
  ): Promise<FetchResult<F>> {
    const [out] = await this.runMany(fetches, [feeds ?? {}], options);
    return out!;
  }

  /**
   * Runs the same fetches once per feed set, overlapping the runs on the workers where the plan
   * allows: with layers on different workers, micro-batch k+1's first layers run while micro-batch
   * k's later layers do. Variable updates apply in the order of `feedSets` (each run sees those of
   * the runs before it), and take effect only if every run succeeds: the call is one step, and a
   * step that fails or is cancelled changes no variable.
   */
  async runMany<F extends Fetches>(
    fetches: F,
    feedSets: readonly Feeds[],
    options: ClusterRunOptions = {},
  ): Promise<FetchResult<F>[]> {
    if (this.closed) throw new KilnError('invalid-argument', 'the session is closed');
    const { ids, rebuild } = flattenFetches(this.graph, fetches);
    // Copied into shared memory now, before the first await: the caller's arrays are not read
    // again, so changing them while the run is under way changes nothing.
    const resolved = feedSets.map(
      (f) => new Map([...resolveFeeds(this.graph, f)].map(([v, t]) => [v, toWire(t)] as const)),
    );
    if (resolved.length === 0) return [];
    await this.pool.settled(this.workers());
    this.checkWorkers();
    const loaded = await this.load(
      ids,
      options.targets ?? [],
      new Map([...resolved[0]!].map(([v, t]) => [v, wireType(t)] as const)),
    );
    await this.initialize(loaded.lowered);
    const runs = resolved.map((feeds) => {
      const wire = new Map<string, WireTensor>();
      for (const name of loaded.lowered.feeds) {
        const t = feeds.get(loaded.feedIds.get(name)!);
        if (!t) throw new KilnError('feed', `no value fed for placeholder '${name}'`);
        wire.set(name, t);
      }
      return wire;
    });
    const execute: ExecuteOptions = {
      ...(options.signal ? { signal: options.signal } : {}),
      timeoutMillis: options.timeoutMillis ?? DEFAULT_CLUSTER_TIMEOUT_MILLIS,
      ...(options.trace ? { trace: options.trace } : {}),
    };
    const results = await this.pool.execute(
      loaded.lowered.partitions,
      loaded.lowered.fetchCount,
      runs,
      execute,
    );
    return results.map((r) => rebuild(r.map(fromWire)) as FetchResult<F>);
  }

  /** The plan a run would use (placement, partitions, memory), for printing with formatPlan. */
  async plan(
    fetches: Fetches,
    feeds: Feeds,
    targets: readonly SymbolicTensor[] = [],
  ): Promise<ExecutionPlan> {
    const { ids } = flattenFetches(this.graph, fetches);
    const types = new Map(
      [...resolveFeeds(this.graph, feeds)].map(
        ([v, t]) => [v, { dtype: t.dtype, shape: [...t.shape] }] as const,
      ),
    );
    return (await this.load(ids, targets, types)).plan;
  }

  /**
   * Every variable's current value, read back from the worker that holds it. Variables lost with
   * a worker that died or hung are missing until setVariables gives them back.
   */
  async variables(): Promise<Map<string, HostTensor>> {
    return this.read(() => this.initialized);
  }

  /** The values of `which()` (asked once the workers are settled), from the workers holding them. */
  private async read(which: () => Iterable<string>): Promise<Map<string, HostTensor>> {
    await this.pool.settled(this.workers());
    this.checkWorkers();
    const byWorker = new Map<string, string[]>();
    for (const name of which()) {
      const w = this.pool.home(name)!;
      byWorker.set(w, [...(byWorker.get(w) ?? []), name]);
    }
    const out = new Map<string, HostTensor>();
    for (const [worker, names] of byWorker) {
      const reply = await this.pool.request(worker, { t: 'getVariables', names }, 'read variables');
      if (reply.t === 'variables') for (const [n, t] of reply.variables) out.set(n, fromWire(t));
    }
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /**
   * Sets variables (a checkpoint's values) on their workers. Every value is checked against its
   * variable's type in the graph before any is sent, so a call with a wrong one changes nothing.
   */
  async setVariables(values: ReadonlyMap<string, HostTensor>): Promise<void> {
    // A worker replaced since the last call has lost its variables: these values restore them,
    // and must not be taken for lost again by the next run.
    await this.pool.settled(this.workers());
    this.checkWorkers();
    const byWorker = new Map<string, [string, WireTensor][]>();
    const types = this.variableTypes();
    for (const [name, t] of values) {
      const declared = types.get(name);
      if (!declared)
        throw new KilnError('invalid-argument', `setVariables: the graph has no variable '${name}'`);
      if (!fitsType(t, declared))
        throw new KilnError(
          'invalid-argument',
          `setVariables: variable '${name}' is ${describe(declared)} in the graph, got ${describe(t)}`,
        );
    }
    for (const [name, t] of values) {
      const worker = this.pool.home(name);
      if (!worker)
        throw new KilnError(
          'invalid-argument',
          `variable '${name}' has no worker yet: run a step that uses it first`,
        );
      byWorker.set(worker, [...(byWorker.get(worker) ?? []), [name, toWire(t)]]);
    }
    for (const [worker, variables] of byWorker) {
      await this.pool.request(worker, { t: 'setVariables', variables }, 'set variables');
      for (const [n] of variables) {
        this.initialized.add(n);
        this.lost.delete(n);
      }
    }
  }

  /** The type of each of the graph's variables, by name. */
  private variableTypes(): Map<string, TensorType> {
    return new Map(
      this.graph.nodes
        .filter((n) => n.op === 'variable')
        .map((n) => [String(n.attrs.name), this.graph.values[n.outputs[0]!]!.type] as const),
    );
  }

  private planningDevices(): Promise<Device[]> {
    this.devices ??= this.pool.planningDevices(this.workers());
    return this.devices;
  }

  private async load(
    fetches: readonly ValueId[],
    targets: readonly SymbolicTensor[],
    feeds: ReadonlyMap<ValueId, ConcreteType>,
  ): Promise<Loaded> {
    const feedTypes = feeds;
    const key = [
      fetches.join(','),
      targets.map((t) => t.id).join(','),
      [...feedTypes].map(([v, t]) => `${v}:${t.dtype}[${t.shape.join(',')}]`).join(';'),
    ].join('|');
    const cached = this.plans.get(key);
    if (cached) return cached;

    // A variable keeps the worker it was first placed on, so its value is where every plan looks.
    // Its assigns are pinned there too: a plan that only stores into it (the initializers' plan)
    // holds no variable node to pin.
    const hints = new Map<NodeId, string>();
    for (const node of this.graph.nodes) {
      const variable =
        node.op === 'variable' ? node.attrs.name : node.op === 'assign' ? node.attrs.variable : undefined;
      const home = variable === undefined ? undefined : this.pool.home(String(variable));
      if (home) hints.set(node.id, home);
    }
    const p = plan(this.graph, await this.planningDevices(), {
      fetches,
      targets: targets.map((t) => t.id),
      feeds: feedTypes,
      hints,
    });
    const prefix = this.pool.planPrefix();
    const lowered = lowerPlan(p, prefix);
    for (const [name, worker] of lowered.variables) {
      const home = this.pool.home(name);
      if (home && home !== worker)
        throw new KilnError(
          'runtime',
          `variable '${name}' lives on ${home}, but the plan placed it on ${worker}`,
        );
    }
    this.pool.placed(placementRecord(p, lowered, prefix));
    for (const { worker, message } of lowered.loads)
      await this.pool.request(worker, message, `load partition ${message.partition}`);
    const feedIds = new Map(
      this.graph.nodes
        .filter((n) => n.op === 'placeholder')
        .map((n) => [String(n.attrs.name), n.outputs[0]!] as const),
    );
    const loaded = { plan: p, lowered, feedIds };
    this.plans.set(key, loaded);
    return loaded;
  }

  /** Gives the plan's variables that have no value yet their initial values, on their workers. */
  private async initialize(lowered: LoweredPlan): Promise<void> {
    const missing = [...lowered.variables.keys()].filter((n) => !this.initialized.has(n));
    if (missing.length === 0) return;
    const lost = missing.filter((n) => this.lost.has(n));
    if (lost.length > 0) {
      const workers = [...new Set(lost.map((n) => this.lost.get(n)!))].map((w) => `'${w}'`).join(', ');
      throw new KilnError(
        'worker',
        `variables ${lost.map((n) => `'${n}'`).join(', ')} were lost when ${workers} died; give them values again with setVariables (from a checkpoint, or another replica) before the next run`,
      );
    }
    const initializers = new Map(this.graph.initializers.map((i) => [i.variable, i.value]));
    for (const name of missing) {
      if (!initializers.has(name))
        throw new KilnError('runtime', `variable '${name}' has no initializer and no value was set`);
    }
    // The initial values are computed and stored where their variables live, by a plan of their
    // own that assigns them: no weight passes through the coordinator (a large model's would
    // hold its event loop for seconds).
    const init = Graph.from(this.graph);
    const targets = missing.map((name) => {
      const variable = init.nodes.find((n) => n.op === 'variable' && n.attrs.name === name)!;
      return init.assign(
        new SymbolicTensor(init, variable.outputs[0]!),
        new SymbolicTensor(init, initializers.get(name)!),
        `${name}/initialize`,
      );
    });
    const session = new ClusterSession(init, this.pool);
    // The variables it assigns are being given their values: it must not try to initialize them.
    for (const name of [...this.initialized, ...missing]) session.initialized.add(name);
    try {
      await session.run([], {}, { targets });
    } finally {
      await session.unload();
    }
    for (const name of missing) {
      this.initialized.add(name);
      this.lost.delete(name);
    }
  }

  /** One variable's current value, read back from the worker that holds it. */
  async readVariable(name: string): Promise<HostTensor> {
    if (!this.variableTypes().has(name))
      throw new KilnError('invalid-argument', `readVariable: the graph has no variable '${name}'`);
    const value = (await this.read(() => (this.initialized.has(name) ? [name] : []))).get(name);
    if (!value)
      throw new KilnError(
        'invalid-argument',
        `readVariable: variable '${name}' has no value on any worker${this.lost.has(name) ? ` (${this.lost.get(name)})` : ': run a step that uses it first'}`,
      );
    return value;
  }

  /** Frees what this session loaded on the workers; later runs are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await this.unload();
  }

  /**
   * Frees this graph's variables on the workers, and their homes: for a program done with its
   * weights (a finished job), on a cluster that lives on. A later run initializes them afresh.
   */
  async dropVariables(): Promise<void> {
    const names = this.graph.nodes.filter((n) => n.op === 'variable').map((n) => String(n.attrs.name));
    await this.pool.dropVariables(names);
    for (const name of names) this.initialized.delete(name);
  }

  /** Frees the partitions this session loaded on the workers (its variables stay there). */
  async unload(): Promise<void> {
    const byWorker = new Map<string, string[]>();
    for (const { lowered } of this.plans.values())
      for (const { worker, message } of lowered.loads)
        byWorker.set(worker, [...(byWorker.get(worker) ?? []), message.partition]);
    this.plans.clear();
    for (const [worker, partitions] of byWorker)
      await this.pool.request(worker, { t: 'unload', partitions }, 'unload partitions');
  }

  /**
   * A worker that died was replaced by a fresh one: every plan must be loaded again, and the
   * variables it held are lost until setVariables gives them back (never silently re-initialized).
   */
  private checkWorkers(): void {
    for (const worker of this.workers() ?? this.pool.names) {
      const now = this.pool.generation(worker);
      const then = this.generations.get(worker);
      this.generations.set(worker, now);
      if (then === undefined || then === now) continue;
      this.plans.clear();
      for (const name of [...this.initialized]) {
        if (this.pool.home(name) !== worker || !this.initialized.delete(name)) continue;
        this.lost.set(name, worker);
      }
    }
  }
}

/** Whether a value is of a variable's type: the same dtype and shape (an unknown size fits any). */
function fitsType(t: HostTensor, declared: TensorType): boolean {
  return (
    t.dtype === declared.dtype &&
    t.shape.length === declared.shape.length &&
    declared.shape.every((d, i) => d === null || d === t.shape[i])
  );
}

const describe = (t: TensorType) => `${t.dtype}${formatShape(t.shape)}`;
