import {
  type ConcreteType,
  type Executable,
  extractSubgraph,
  formatShape,
  type GraphData,
  KilnError,
  type Node,
  type NodeId,
  type ValueId,
} from '@kiln/ir';
import type { EagerContext } from '../eager/context.js';
import type { Tensor } from '../eager/tensor.js';
import { RunGuard } from '../limits/run-guard.js';
import { planSteps, type SegmentStep, type Step } from './steps.js';

/** A region of a cond or while: a self-contained graph with its own inputs and results. */
interface RegionLike extends GraphData {
  readonly inputs: readonly ValueId[];
  readonly results: readonly ValueId[];
}

/**
 * The executor's run: a generator that yields a scalar tensor whenever it needs its value on the
 * host (a branch predicate, a loop condition) and is resumed with the number. A synchronous device
 * is driven with readSync, any other with await: one body serves both.
 */
export type Run = Generator<Tensor, Tensor[], number>;

export interface ProgramOptions {
  readonly name: string;
  /** Values that are other values under a new name (an assign's output is what it stores). */
  readonly aliases?: ReadonlyMap<ValueId, ValueId>;
}

/**
 * A graph made runnable on eager tensors, control flow included: ordinary nodes run as compiled
 * segments (each compiled once per concrete input types, so a region specializes to the shapes
 * it meets), while cond and while nodes are run here, on any device, by running their regions as
 * programs of their own.
 */
export class Program {
  private readonly steps: Step[];
  private readonly executables = new Map<
    SegmentStep,
    Map<string, { exe: Executable | Promise<Executable>; types: ConcreteType[] }>
  >();
  private readonly regions = new Map<Node, Program[]>();
  private readonly aliases: ReadonlyMap<ValueId, ValueId>;

  constructor(
    readonly eager: EagerContext,
    readonly graph: GraphData,
    readonly nodes: readonly NodeId[],
    readonly inputs: readonly ValueId[],
    readonly outputs: readonly ValueId[],
    readonly options: ProgramOptions,
  ) {
    this.aliases = options.aliases ?? new Map();
    this.steps = planSteps(graph, nodes, new Set(inputs), outputs, this.aliases);
  }

  static ofRegion(eager: EagerContext, region: RegionLike, name: string): Program {
    return new Program(
      eager,
      region,
      region.nodes.map((n) => n.id),
      region.inputs,
      region.results,
      { name },
    );
  }

  /** Frees every executable compiled so far, regions included. */
  dispose(): void {
    for (const byTypes of this.executables.values()) {
      // At once where it can be: a loop that never yields must not pile up disposed executables.
      // A compile in flight is disposed when it lands; one that failed has nothing to free (its
      // failure went to the run that asked for it) and must not resurface as unhandled here.
      for (const { exe } of byTypes.values()) {
        if (exe instanceof Promise)
          exe.then(
            (e) => e.dispose(),
            () => undefined,
          );
        else exe.dispose();
      }
    }
    this.executables.clear();
    for (const programs of this.regions.values()) for (const p of programs) p.dispose();
    this.regions.clear();
  }

  runSync(args: readonly Tensor[], guard?: RunGuard): Tensor[] {
    const run = this.run(args, guard);
    let r = run.next();
    while (!r.done) r = run.next(r.value.item());
    return r.value;
  }

  /**
   * Runs to the end, reading predicates with await. A run that keeps the thread busy (a long loop
   * on a synchronous device, whose reads resolve at once) gives the event loop a turn every few
   * milliseconds, so timers, I/O and a caller's abort still happen while it runs.
   */
  async runAsync(args: readonly Tensor[], guard?: RunGuard): Promise<Tensor[]> {
    const run = this.run(args, guard);
    let turn = performance.now();
    let r = run.next();
    while (!r.done) {
      const value = (await r.value.data())[0]!;
      if (performance.now() - turn > YIELD_EVERY_MILLIS) {
        await yieldToEventLoop();
        turn = performance.now();
      }
      r = run.next(value);
    }
    return r.value;
  }

  /**
   * Runs on `args` (bound to the inputs, in order) and returns new tensors for the outputs. The
   * arguments stay the caller's; every intermediate is disposed. `guard` is checked between steps
   * and loop iterations (cancellation, time, the loop limit); by default, the context's limits.
   */
  *run(args: readonly Tensor[], guard = new RunGuard(this.options.name, this.eager.limits)): Run {
    if (args.length !== this.inputs.length) {
      throw new KilnError(
        'invalid-argument',
        `${this.options.name}: expected ${this.inputs.length} inputs, got ${args.length}`,
      );
    }
    const env = new Map<ValueId, Tensor>();
    this.inputs.forEach((v, i) => env.set(v, args[i]!));
    const owned = new Set<Tensor>();
    const resolve = (v: ValueId) => this.aliases.get(v) ?? v;
    const get = (v: ValueId): Tensor => {
      const t = env.get(resolve(v));
      if (!t) throw new KilnError('runtime', `${this.options.name}: value %${v} was not computed`);
      return t;
    };
    try {
      for (const step of this.steps) {
        guard.check();
        if (step.kind === 'segment') {
          const outs = this.runSegment(step, step.inputs.map(get));
          step.results.forEach((v, k) => {
            env.set(v, outs[k]!);
            owned.add(outs[k]!);
          });
        } else {
          const outs = yield* this.runControl(step.node, step.node.inputs.map(get), guard);
          step.node.outputs.forEach((v, k) => {
            env.set(v, outs[k]!);
            owned.add(outs[k]!);
          });
        }
      }
      // Outputs are fresh tensors even when they are inputs or repeat, so callers own them all.
      const seen = new Set<Tensor>();
      return this.outputs.map((v) => {
        const t = get(v);
        if (owned.has(t) && !seen.has(t)) {
          seen.add(t);
          owned.delete(t);
          return t;
        }
        return this.eager.apply('reshape', [t], { shape: t.shape })[0]!;
      });
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  private runSegment(step: SegmentStep, inputs: readonly Tensor[]): Tensor[] {
    let byTypes = this.executables.get(step);
    if (!byTypes) this.executables.set(step, (byTypes = new Map()));
    const key = inputs.map((t) => `${t.dtype}${formatShape(t.shape)}`).join(';');
    let compiled = byTypes.get(key);
    if (!compiled) {
      const bind = new Map<ValueId, ConcreteType>(step.inputs.map((v, i) => [v, inputs[i]!]));
      const { subgraph } = extractSubgraph(this.graph, {
        nodes: step.nodes,
        bind,
        results: step.results,
        aliases: this.aliases,
      });
      const exe = this.eager.compileForDevice(subgraph);
      compiled = { exe, types: subgraph.results.map((v) => subgraph.values[v]!.type as ConcreteType) };
      byTypes.set(key, compiled);
      if (exe instanceof Promise) {
        // A failed compile reaches the caller through the device queue. It is not cached (the
        // next run compiles again), and it is never left unhandled when queued work that would
        // await it is skipped after an earlier failure.
        const entries = byTypes;
        exe.catch(() => entries.delete(key));
      }
    }
    return this.eager.execute(compiled.exe, inputs, compiled.types, this.options.name);
  }

  private regionPrograms(node: Node): Program[] {
    let programs = this.regions.get(node);
    if (!programs) {
      const names = node.op === 'cond' ? ['then', 'else'] : ['cond', 'body'];
      const where = `${this.options.name} / ${node.op} #${node.id}${node.name ? ` '${node.name}'` : ''}`;
      programs = names.map((r) => Program.ofRegion(this.eager, node.attrs[r] as RegionLike, `${where} ${r}`));
      this.regions.set(node, programs);
    }
    return programs;
  }

  private *runControl(node: Node, inputs: readonly Tensor[], guard: RunGuard): Run {
    const [first, second] = this.regionPrograms(node);
    if (node.op === 'cond') {
      const pred = yield inputs[0]!;
      return yield* (pred ? first! : second!).run(inputs.slice(1), guard);
    }
    const where = `${this.options.name} / while #${node.id}${node.name ? ` '${node.name}'` : ''}`;
    // while: the carried values start as (copies of) the inputs and are replaced each iteration.
    const max = node.attrs.maxIterations as number;
    let carried = yield* identityRun(this.eager, inputs);
    try {
      for (let i = 0; max < 0 || i < max; i++) {
        guard.iteration(i, where);
        const [test] = yield* first!.run(carried, guard);
        const go = yield test!;
        test!.dispose();
        if (!go) break;
        const next = yield* second!.run(carried, guard);
        for (const t of carried) t.dispose();
        carried = next;
      }
      const out = carried;
      carried = [];
      return out;
    } finally {
      for (const t of carried) t.dispose();
    }
  }
}

const YIELD_EVERY_MILLIS = 10;

/** Lets timers and I/O run: setImmediate in Node, a zero timeout where there is none. */
function yieldToEventLoop(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
}

/** Fresh copies of tensors, so a loop can dispose its carried values without touching inputs. */
function* identityRun(eager: EagerContext, inputs: readonly Tensor[]): Run {
  return inputs.map((t) => eager.apply('reshape', [t], { shape: t.shape })[0]!);
}
