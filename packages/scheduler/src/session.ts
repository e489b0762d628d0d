import {
  type BufferView,
  byteSizeOf,
  type ConcreteType,
  checkDevice,
  type Device,
  type DeviceBuffer,
  type Executable,
  extractSubgraph,
  formatShape,
  Graph,
  type GraphData,
  type HostTensor,
  KilnError,
  type ValueId,
  verifyGraph,
} from '@kiln/ir';
import { type Feeds, missingFeedError, resolveFeeds } from './feeds.js';
import { type Fetches, type FetchResult, flattenFetches } from './fetches.js';
import { bytesOf, hostTensorFromBytes } from './host-bytes.js';
import { planRun } from './run-plan.js';

export interface SessionOptions {
  /** The device every node runs on. */
  readonly device: Device;
}

interface DeviceTensor {
  buffer: DeviceBuffer;
  readonly type: ConcreteType;
}

interface Compiled {
  readonly exe: Executable;
  readonly feeds: readonly ValueId[];
  readonly variables: readonly string[];
  readonly fetchTypes: readonly ConcreteType[];
  readonly assigns: readonly { readonly variable: string; readonly type: ConcreteType }[];
}

const align = (n: number) => Math.ceil(n / 16) * 16;

/**
 * Runs a graph in the TensorFlow 1.x style: `run(fetches, feeds)` computes only what the fetches
 * need, checks the feeds against the placeholders, and keeps variables on the device between runs.
 * A run reads every variable as it was before the run; its assigns take effect when it finishes.
 * Runs are serialized, so concurrent calls see each other's assigns in call order.
 */
export class Session {
  readonly graph: Graph;
  readonly device: Device;
  private readonly variables = new Map<string, DeviceTensor>();
  private readonly compiled = new Map<string, Compiled>();
  private verifiedNodes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(graph: Graph | GraphData, options: SessionOptions) {
    checkDevice(options.device);
    this.device = options.device;
    this.graph = graph instanceof Graph ? graph : Graph.from(graph);
  }

  /** Fetches tensors (a tensor, a name, or arrays/records of them), feeding placeholders by name. */
  run<F extends Fetches>(fetches: F, feeds?: Feeds): Promise<FetchResult<F>> {
    return this.serialize(() => this.runNow(fetches, feeds)) as Promise<FetchResult<F>>;
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
      const v = this.variables.get(name)!;
      return hostTensorFromBytes(v.type, await this.device.read(v.buffer, 0, byteSizeOf(v.type)));
    });
  }

  /** Frees the session's device memory and compiled executables. */
  close(): Promise<void> {
    return this.serialize(async () => {
      this.closed = true;
      for (const c of this.compiled.values()) c.exe.dispose();
      for (const v of this.variables.values()) this.device.free(v.buffer);
      this.compiled.clear();
      this.variables.clear();
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

  private async runNow(fetches: Fetches, feeds: Feeds | undefined): Promise<unknown> {
    this.verify();
    const { ids, labels, rebuild } = flattenFetches(this.graph, fetches);
    const fed = resolveFeeds(this.graph, feeds);
    const plan = planRun(this.graph, ids);
    for (const p of plan.placeholders) {
      if (!fed.has(p.outputs[0]!)) throw missingFeedError(this.graph, p, `fetch ${labels.join(', ')}`);
    }
    for (const v of plan.variables) await this.ensureVariable(v.attrs.name as string, []);

    const feedIds = plan.placeholders.map((p) => p.outputs[0]!);
    const key = [
      this.graph.nodes.length,
      ids.join(','),
      feedIds.map((v) => `${v}:${formatShape(fed.get(v)!.shape)}`).join(';'),
    ].join('|');
    let compiled = this.compiled.get(key);
    if (!compiled) {
      compiled = await this.compile(ids, plan, feedIds, fed);
      this.compiled.set(key, compiled);
    }
    return rebuild(await this.execute(compiled, fed));
  }

  private async compile(
    ids: readonly ValueId[],
    plan: ReturnType<typeof planRun>,
    feedIds: readonly ValueId[],
    fed: ReadonlyMap<ValueId, HostTensor>,
  ): Promise<Compiled> {
    const bind = new Map<ValueId, ConcreteType>();
    for (const v of feedIds) bind.set(v, { dtype: fed.get(v)!.dtype, shape: fed.get(v)!.shape });
    const variables = plan.variables.map((n) => n.attrs.name as string);
    plan.variables.forEach((n, i) => bind.set(n.outputs[0]!, this.variables.get(variables[i]!)!.type));
    const assignValues = plan.assigns.map((n) => n.inputs[0]!);
    const { subgraph } = extractSubgraph(this.graph, {
      nodes: plan.nodes,
      bind,
      results: [...ids, ...assignValues],
      aliases: plan.aliases,
    });
    const type = (v: ValueId) => subgraph.values[v]!.type as ConcreteType;
    const exe = await this.device.compile(subgraph);
    return {
      exe,
      feeds: feedIds,
      variables,
      fetchTypes: subgraph.results.slice(0, ids.length).map(type),
      assigns: plan.assigns.map((n, i) => ({
        variable: n.attrs.variable as string,
        type: type(subgraph.results[ids.length + i]!),
      })),
    };
  }

  private async execute(c: Compiled, fed: ReadonlyMap<ValueId, HostTensor>): Promise<HostTensor[]> {
    const device = this.device;
    const arena = (types: readonly ConcreteType[]) => {
      const offsets: number[] = [];
      let total = 0;
      for (const t of types) {
        offsets.push(total);
        total = align(total + byteSizeOf(t));
      }
      const buffer = device.allocate(total);
      return types.map(
        (t, i): BufferView => ({ buffer, byteOffset: offsets[i]!, dtype: t.dtype, shape: t.shape }),
      );
    };
    const feedViews = arena(c.feeds.map((v) => fed.get(v)!));
    const fetchViews = arena(c.fetchTypes);
    const assignBuffers = c.assigns.map((a) => device.allocate(byteSizeOf(a.type)));
    try {
      await Promise.all(
        c.feeds.map((v, i) =>
          device.write(feedViews[i]!.buffer, feedViews[i]!.byteOffset, bytesOf(fed.get(v)!)),
        ),
      );
      const varViews = c.variables.map((name): BufferView => {
        const v = this.variables.get(name)!;
        return { buffer: v.buffer, byteOffset: 0, dtype: v.type.dtype, shape: v.type.shape };
      });
      const assignViews = c.assigns.map(
        (a, i): BufferView => ({
          buffer: assignBuffers[i]!,
          byteOffset: 0,
          dtype: a.type.dtype,
          shape: a.type.shape,
        }),
      );
      await c.exe.run([...feedViews, ...varViews], [...fetchViews, ...assignViews]);
      const results = await Promise.all(
        fetchViews.map(async (view) =>
          hostTensorFromBytes(view, await device.read(view.buffer, view.byteOffset, byteSizeOf(view))),
        ),
      );
      c.assigns.forEach((a, i) => {
        const v = this.variables.get(a.variable)!;
        device.free(v.buffer);
        v.buffer = assignBuffers[i]!;
      });
      assignBuffers.length = 0;
      return results;
    } finally {
      for (const b of assignBuffers) device.free(b);
      if (feedViews[0]) device.free(feedViews[0].buffer);
      if (fetchViews[0]) device.free(fetchViews[0].buffer);
    }
  }

  /** Computes a variable's initial value, first initializing variables its initializer reads. */
  private async ensureVariable(name: string, initializing: readonly string[]): Promise<void> {
    if (this.variables.has(name)) return;
    if (initializing.includes(name)) {
      throw new KilnError(
        'invalid-argument',
        `variable initializers form a cycle: ${[...initializing, name].join(' -> ')}`,
      );
    }
    const init = this.graph.initializers.find((i) => i.variable === name);
    if (!init) throw new KilnError('invalid-argument', `no variable named '${name}'`);
    const plan = planRun(this.graph, [init.value]);
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
    const c = await this.compile([init.value], plan, [], new Map());
    try {
      const [value] = await this.execute(c, new Map());
      const buffer = this.device.allocate(byteSizeOf(value!));
      await this.device.write(buffer, 0, bytesOf(value!));
      this.variables.set(name, { buffer, type: { dtype: value!.dtype, shape: value!.shape } });
    } finally {
      c.exe.dispose();
    }
  }
}
