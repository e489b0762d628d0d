import {
  type Checkpoint,
  checkDevice,
  type Device,
  formatShape,
  Graph,
  type GraphData,
  HostTensor,
  handledIfCancelled,
  KilnError,
  optimize,
  passesFor,
  requiredNodes,
  type SymbolicTensor,
  type ValueId,
  verifyGraph,
} from '@kiln/ir';
import { EagerContext, type Fallback } from './eager/context.js';
import { keep } from './eager/scope.js';
import type { Tensor } from './eager/tensor.js';
import { type Feeds, missingFeedError, resolveFeeds } from './feeds.js';
import { type Fetches, type FetchResult, flattenFetches } from './fetches.js';
import type { ResourceLimits } from './limits/limits.js';
import { RunGuard } from './limits/run-guard.js';
import { Program } from './program/program.js';
import { devices } from './registry.js';
import { planRun, type RunPlan } from './run-plan.js';
import type { VariableSession } from './variable-session.js';

export interface RunOptions {
  /** Tensors to compute without fetching them, such as an optimizer's updates. */
  readonly targets?: readonly SymbolicTensor[];
  /** Cancels the run: it stops at its next step and rejects with KilnError('cancelled'). */
  readonly signal?: AbortSignal;
  /** Wall time for this run (overrides limits.timeoutMillis); past it, KilnError('timeout'). */
  readonly timeoutMillis?: number;
}

export interface SessionOptions {
  /** The device every node runs on. */
  readonly device: Device;
  /** What one run may take: memory per tensor and in all, loop iterations, time (DEFAULT_LIMITS). */
  readonly limits?: ResourceLimits;
}

interface Compiled {
  readonly program: Program;
  readonly plan: RunPlan;
  readonly fetchCount: number;
}

/** One call of run, prepared when it was made: its program and its feeds, already on the device. */
interface Call {
  readonly compiled: Compiled;
  /** The plan's placeholders' values, in order; the call owns them. */
  readonly feeds: readonly Tensor[];
  /** How many of the program's results the caller fetches (the rest are targets). */
  readonly fetched: number;
  readonly rebuild: (ts: HostTensor[]) => unknown;
  readonly guard: RunGuard;
}

/**
 * Runs a graph in the TensorFlow 1.x style: `run(fetches, feeds)` computes only what the fetches
 * need, checks the feeds against the placeholders, and keeps variables on the device between runs.
 * A run reads every variable as it was before the run; its assigns take effect when it finishes.
 * Runs are serialized, so concurrent calls see each other's assigns in call order. Structured
 * control flow (cond, while) runs through the same executor as compiled and scripted functions.
 */
export class Session implements VariableSession {
  readonly graph: Graph;
  readonly device: Device;
  private readonly eager: EagerContext;
  private readonly held = new Map<string, Tensor>();
  private readonly programs = new Map<string, Compiled>();
  private verifiedNodes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /**
   * A Session on a device named by plugin kind ('cpu', 'webgpu', or any registered plugin), created
   * from the shared registry (`devices`) with `deviceOptions`; or on a device given as an object.
   */
  static async open<S extends Session>(
    this: new (
      graph: Graph | GraphData,
      options: SessionOptions,
    ) => S,
    graph: Graph | GraphData,
    options: Omit<SessionOptions, 'device'> & {
      readonly device: Device | string;
      readonly deviceOptions?: unknown;
    },
  ): Promise<S> {
    const { device, deviceOptions, ...rest } = options;
    const resolved = typeof device === 'string' ? await devices.create(device, deviceOptions) : device;
    return new this(graph, { ...rest, device: resolved });
  }

  constructor(graph: Graph | GraphData, options: SessionOptions) {
    if (typeof options !== 'object' || options === null)
      throw new KilnError('invalid-argument', 'Session: options must be { device, limits? }');
    checkDevice(options.device);
    this.device = options.device;
    this.eager = new EagerContext(options.device, options.limits);
    this.graph = graph instanceof Graph ? graph : Graph.from(graph);
  }

  /**
   * Fetches tensors (a tensor, a name, or arrays/records of them), feeding placeholders by name.
   * `targets` are run but not fetched: an optimizer's updates. Everything the run reads from its
   * arguments (fetches, feeds, their values) is read now, before this returns: changing a fed
   * array afterwards does not change a run that is still queued.
   */
  run<F extends Fetches>(fetches: F, feeds?: Feeds, options: RunOptions = {}): Promise<FetchResult<F>> {
    let call: Call;
    try {
      call = this.prepare(fetches, feeds, options);
    } catch (e) {
      return Promise.reject(e);
    }
    const done = this.serialize(() => this.runNow(call)).finally(() => {
      for (const t of call.feeds) t.dispose();
    }) as Promise<FetchResult<F>>;
    // A run cancelled (by its signal, or by disposing its device) is not reported as unhandled
    // when nobody awaits it; any other failure is.
    return handledIfCancelled(call.guard.settleEarly(done));
  }

  /**
   * The composites this session's device declined, which it ran as their decompositions: a
   * device without a fast path a program relies on shows here (see EagerContext.fallbacks).
   */
  get fallbacks(): readonly Fallback[] {
    return this.eager.fallbacks;
  }

  /** The values of every variable (initializing any that have none), with `metadata`. */
  checkpoint(metadata: Readonly<Record<string, string | number>> = {}): Promise<Checkpoint> {
    return this.serialize(async () => {
      const variables: Record<string, HostTensor> = {};
      for (const node of this.graph.nodes) {
        if (node.op !== 'variable') continue;
        const name = node.attrs.name as string;
        await this.ensureVariable(name, []);
        variables[name] = await this.held.get(name)!.toHost();
      }
      return { variables, metadata: { ...metadata } };
    });
  }

  /**
   * Sets every variable from a checkpoint. All of it is checked first (every variable present,
   * with its dtype and shape, nothing unknown), so a bad checkpoint changes nothing; its values are
   * copied to the device before this returns, so the caller may reuse the checkpoint's arrays.
   */
  restore(checkpoint: Checkpoint): Promise<void> {
    let values: Map<string, Tensor>;
    try {
      values = this.checkpointValues(checkpoint);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.install(values);
  }

  /** Replaces the values of variables, in turn with the runs; what is not installed is freed. */
  private install(values: Map<string, Tensor>): Promise<void> {
    return this.serialize(async () => {
      for (const [name, value] of values) {
        this.held.get(name)?.dispose();
        this.held.set(name, value);
      }
      values.clear();
    }).finally(() => {
      for (const t of values.values()) t.dispose();
    });
  }

  /**
   * Every variable's value, initializing any that have none: the same call as ClusterSession's,
   * so code that saves or compares weights runs on either.
   */
  async variables(): Promise<Map<string, HostTensor>> {
    return new Map(Object.entries((await this.checkpoint()).variables));
  }

  /**
   * Sets the named variables. Every value is checked against its variable's type in the graph
   * first, so a call with a wrong one changes nothing; values are copied before this returns.
   */
  setVariables(values: ReadonlyMap<string, HostTensor>): Promise<void> {
    let checked: Map<string, Tensor>;
    try {
      checked = this.checkedValues(Object.fromEntries(values), 'setVariables', false);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.install(checked);
  }

  private checkpointValues(checkpoint: Checkpoint): Map<string, Tensor> {
    const vars = (checkpoint as Partial<Checkpoint> | null)?.variables;
    if (typeof vars !== 'object' || vars === null)
      throw new KilnError('invalid-argument', 'restore: expected a checkpoint ({ variables, metadata })');
    return this.checkedValues(vars, 'restore', true);
  }

  /** Values for variables, each checked against the graph (all of them when `all`), on the device. */
  private checkedValues(
    vars: Readonly<Record<string, HostTensor>>,
    what: 'restore' | 'setVariables',
    all: boolean,
  ): Map<string, Tensor> {
    if (this.closed) throw new KilnError('invalid-argument', 'the session is closed');
    // "restore: the checkpoint has ..." / "setVariables: the values have ..."
    const [source, has] = what === 'restore' ? ['the checkpoint', 'has'] : ['the values', 'have'];
    for (const [name, value] of Object.entries(vars))
      if (!(value instanceof HostTensor))
        throw new KilnError('invalid-argument', `${what}: the value of '${name}' is not a HostTensor`);
    const declared = new Map(
      this.graph.nodes.filter((n) => n.op === 'variable').map((n) => [n.attrs.name as string, n]),
    );
    for (const name of Object.keys(vars)) {
      if (!declared.has(name))
        throw new KilnError(
          'invalid-argument',
          `${what}: ${source} ${has} '${name}', which is not a variable of this graph`,
        );
    }
    for (const [name, node] of declared) {
      const value = vars[name];
      if (!value) {
        if (!all) continue;
        throw new KilnError('invalid-argument', `${what}: ${source} ${has} no value for variable '${name}'`);
      }
      const shape = node.attrs.shape as number[];
      if (
        value.dtype !== node.attrs.dtype ||
        value.shape.length !== shape.length ||
        value.shape.some((d, i) => d !== shape[i])
      ) {
        throw new KilnError(
          'invalid-argument',
          `${what}: variable '${name}' is ${String(node.attrs.dtype)}${formatShape(shape)} but ${source} ${what === 'restore' ? 'holds' : 'give'} ${value.dtype}${formatShape(value.shape)}`,
        );
      }
    }
    const values = new Map<string, Tensor>();
    for (const name of declared.keys()) {
      const value = vars[name];
      if (!value) continue;
      values.set(
        name,
        keep(this.eager.constant({ dtype: value.dtype, shape: value.shape, data: value.data })),
      );
    }
    return values;
  }

  /** Initializes every variable that has no value yet. Runs do this on demand. */
  initialize(): Promise<void> {
    return this.serialize(async () => {
      for (const node of this.graph.nodes)
        if (node.op === 'variable') await this.ensureVariable(node.attrs.name as string, []);
    });
  }

  /** The current value of a variable. */
  readVariable(name: string): Promise<HostTensor> {
    return this.serialize(async () => {
      await this.ensureVariable(name, []);
      return this.held.get(name)!.toHost();
    });
  }

  /** Frees the session's device memory. */
  close(): Promise<void> {
    return this.serialize(async () => {
      this.closed = true;
      for (const v of this.held.values()) v.dispose();
      this.held.clear();
      for (const c of this.programs.values()) c.program.dispose();
      this.programs.clear();
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(() => {
      if (this.closed) throw new KilnError('invalid-argument', 'the session is closed');
      return work();
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private verify(): void {
    if (this.verifiedNodes === this.graph.nodes.length) return;
    verifyGraph(this.graph);
    this.verifiedNodes = this.graph.nodes.length;
  }

  private compiled(ids: readonly ValueId[]): Compiled {
    const key = `${this.graph.nodes.length}|${ids.join(',')}`;
    let c = this.programs.get(key);
    if (!c) {
      const plan = planRun(this.graph, ids);
      const inputs = [...plan.placeholders, ...plan.variables].map((n) => n.outputs[0]!);
      // The run's results: fetches (an assign's output is the value it stores) and the values
      // assigns store. They are the roots the optimizing passes keep; feeds and variables are
      // placeholders and variables, which the passes never remove.
      const roots = [...ids, ...plan.assigns.map((n) => n.inputs[0]!)].map((v) => plan.aliases.get(v) ?? v);
      const { graph, valueMap } = optimize(
        { ...this.graph, outputs: Object.fromEntries(roots.map((v, i) => [`result${i}`, v])) },
        passesFor(this.device),
      );
      const at = (v: ValueId) => valueMap.get(v)!;
      const outputs = roots.map(at);
      // Reads of an assign's output (tensors computed from the stored value) resolve to that value.
      const aliases = new Map(
        graph.nodes.filter((n) => n.op === 'assign').map((n) => [n.outputs[0]!, n.inputs[0]!]),
      );
      const program = new Program(this.eager, graph, requiredNodes(graph, outputs), inputs.map(at), outputs, {
        name: 'Session.run',
        aliases,
      });
      c = { program, plan, fetchCount: ids.length };
      this.programs.set(key, c);
    }
    return c;
  }

  /**
   * Works out a run and copies its feeds to the device, at once: what the caller passed is never
   * read again. Compiling here too means a bad fetch or feed fails before the run is queued.
   */
  private prepare(fetches: Fetches, feeds: Feeds | undefined, options: RunOptions): Call {
    if (this.closed) throw new KilnError('invalid-argument', 'the session is closed');
    if (typeof options !== 'object' || options === null)
      throw new KilnError(
        'invalid-argument',
        'Session.run: options must be { targets?, signal?, timeoutMillis? }',
      );
    const timeout = options.timeoutMillis ?? this.eager.limits.timeoutMillis;
    const setting = options.timeoutMillis !== undefined ? "the run's timeoutMillis" : 'limits.timeoutMillis';
    const guard = new RunGuard('Session.run', this.eager.limits, options.signal, timeout, setting);
    guard.check();
    const targets = options.targets ?? [];
    this.verify();
    const flat = flattenFetches(this.graph, fetches);
    const ids = [...flat.ids, ...flattenFetches(this.graph, targets).ids];
    const fed = resolveFeeds(this.graph, feeds);
    const compiled = this.compiled(ids);
    for (const p of compiled.plan.placeholders) {
      if (!fed.has(p.outputs[0]!)) throw missingFeedError(this.graph, p, `fetch ${flat.labels.join(', ')}`);
    }
    const values = compiled.plan.placeholders.map((p) => {
      const h = fed.get(p.outputs[0]!)!;
      return keep(this.eager.constant({ dtype: h.dtype, shape: h.shape, data: h.data }));
    });
    return { compiled, feeds: values, fetched: flat.ids.length, rebuild: flat.rebuild, guard };
  }

  private async runNow({ compiled, feeds, fetched: fetchedCount, rebuild, guard }: Call): Promise<unknown> {
    const { program, plan, fetchCount } = compiled;
    guard.check(); // it may have waited behind other runs
    for (const v of plan.variables) await this.ensureVariable(v.attrs.name as string, []);
    const results = await this.execute(program, plan, feeds, guard);
    const fetched = results.slice(0, fetchCount);
    const hosts = await Promise.all(fetched.slice(0, fetchedCount).map((t) => t.toHost()));
    for (const t of fetched) t.dispose();
    plan.assigns.forEach((n, i) => {
      const name = n.attrs.variable as string;
      // A variable assigned before anything read it has no value to replace.
      this.held.get(name)?.dispose();
      this.held.set(name, keep(results[fetchCount + i]!));
    });
    return rebuild(hosts);
  }

  private async execute(
    program: Program,
    plan: RunPlan,
    feeds: readonly Tensor[],
    guard?: RunGuard,
  ): Promise<Tensor[]> {
    const args = [...feeds, ...plan.variables.map((v) => this.held.get(v.attrs.name as string)!)];
    return (await program.runAsync(args, guard)).map(keep);
  }

  /** Computes a variable's initial value, first initializing variables its initializer reads. */
  private async ensureVariable(name: string, initializing: readonly string[]): Promise<void> {
    if (this.held.has(name)) return;
    if (initializing.includes(name)) {
      throw new KilnError(
        'invalid-argument',
        `variable initializers form a cycle: ${[...initializing, name].join(' -> ')}`,
      );
    }
    const init = this.graph.initializers.find((i) => i.variable === name);
    if (!init) throw new KilnError('invalid-argument', `no variable named '${name}'`);
    const { program, plan } = this.compiled([init.value]);
    const placeholder = plan.placeholders[0];
    if (placeholder) {
      throw new KilnError(
        'invalid-argument',
        `the initializer of variable '${name}' depends on placeholder '${String(placeholder.attrs.name)}'`,
      );
    }
    if (plan.assigns.length > 0)
      throw new KilnError('invalid-argument', `the initializer of variable '${name}' assigns a variable`);
    for (const v of plan.variables)
      await this.ensureVariable(v.attrs.name as string, [...initializing, name]);
    const [value] = await this.execute(program, plan, []);
    this.held.set(name, value!);
  }
}
