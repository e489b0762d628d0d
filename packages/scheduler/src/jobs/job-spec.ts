import {
  deserializeGraph,
  type GraphData,
  HostTensor,
  KilnError,
  placeholderNodes,
  serializeGraph,
} from '@kiln/ir';
import { SpecReader } from './spec-reader.js';

/**
 * A job is data, never code: a serialized forward graph and what to do with it. Two kinds:
 * - `train`: a training loop over a dataset (the job adds the optimizer, and for data
 *   parallelism the replicas and the all-reduce), reporting progress, checkpointing and
 *   evaluating at the end;
 * - `run`: fetch some outputs of the graph for given feeds, once.
 */
export type JobSpec = TrainJobSpec | RunJobSpec;

interface CommonSpec {
  /** A name for people (listings, the dashboard); not unique. */
  readonly name: string;
  /** Chosen by the client: submitting the same id twice gives the first job, not a second. */
  readonly submissionId?: string;
  /** The serialized forward graph (serializeGraph): placeholders, variables, named outputs. */
  readonly graph: Uint8Array;
  /** The device kind the job's workers must serve ('cpu', 'webgpu', ...). */
  readonly device: string;
}

export interface DatasetRef {
  /** Safetensors shards on the coordinator's machine, concatenated along rows. */
  readonly files: readonly string[];
  /** The graph's placeholder -> the dataset tensor fed to it. */
  readonly feeds: Readonly<Record<string, string>>;
}

export type OptimizerSpec =
  | {
      readonly kind: 'adam';
      readonly learningRate: number;
      readonly beta1?: number;
      readonly beta2?: number;
      readonly epsilon?: number;
    }
  | { readonly kind: 'sgd'; readonly learningRate: number; readonly momentum?: number };

export type Parallelism =
  /** One worker runs the whole graph. */
  | { readonly kind: 'none' }
  /**
   * The graph is replicated on `workers` workers; each takes an equal slice of every batch, and
   * the gradients are summed by a ring (the same weights as on one worker within float32
   * rounding, but not bit for bit: the sums depend on the worker count).
   * With `microBatches` (K), every batch is cut into K fixed micro-batches whatever the worker
   * count, each worker computes a contiguous range of them and the gradients are summed in
   * micro-batch order: the weights are bit-identical on any number of workers from 1 to K, so a
   * job can go on with fewer workers and end where it would have. K must divide loop.batchSize and
   * be at least `workers`; 12 splits evenly over 1, 2, 3, 4, 6 and 12 workers, and any count up to
   * 12 works (12 over 5: 3, 3, 2, 2, 2 micro-batches).
   */
  | { readonly kind: 'data'; readonly workers: number; readonly microBatches?: number }
  /** The graph's own device scopes (`worker:0`, `worker:1`, ...) say where everything runs. */
  | { readonly kind: 'graph' };

export interface TrainJobSpec extends CommonSpec {
  readonly kind: 'train';
  /** The graph output holding the loss: a float32 scalar, the batch mean. */
  readonly loss: string;
  /** Other scalar outputs reported with progress (metrics). */
  readonly report: readonly string[];
  readonly optimizer: OptimizerSpec;
  readonly dataset: DatasetRef;
  readonly loop: {
    /** Training steps; or `epochs` whole passes over the dataset (one of the two). */
    readonly steps?: number;
    readonly epochs?: number;
    readonly batchSize: number;
    /** Seeds the data order: epoch e's order depends only on (seed, e). */
    readonly seed: number;
  };
  readonly parallelism: Parallelism;
  /** Writes the weights every `every` steps (and at the end) into `dir`. */
  readonly checkpoint?: { readonly every: number; readonly dir: string };
  /**
   * Recovery from a lost worker (one that died or hung): the job commits its state (every
   * variable, optimizer state included, and the step reached) in memory after step 1 and every
   * `commitEvery` steps; when a step fails because a worker was lost, it waits up to
   * `replaceTimeoutMillis` for the replacement, restores the commit and replays from it, at most
   * `retries` times (0: no recovery, no commits). Defaults: 100 steps, 3 retries, 60 s.
   */
  readonly recovery: {
    readonly commitEvery: number;
    readonly retries: number;
    readonly replaceTimeoutMillis: number;
  };
  /** After training: the mean of these scalar outputs over a held-out dataset: the final metrics. */
  readonly evaluate?: {
    readonly dataset: DatasetRef;
    readonly batchSize: number;
    readonly outputs: readonly string[];
  };
}

export interface RunJobSpec extends CommonSpec {
  readonly kind: 'run';
  readonly feeds: Readonly<Record<string, HostTensor>>;
  readonly fetches: readonly string[];
}

/** What a caller may pass to submit: the graph as data or bytes, defaults left out. */
export type JobSpecInput = Record<string, unknown> & { readonly graph: GraphData | Uint8Array };

const DEFAULT_DEVICE = 'cpu';

/**
 * Checks a job spec against itself and its graph, with every problem named by its field
 * (`loop.batchSize: must be an integer >= 1; got 0`), and returns it with its defaults filled in
 * and the graph as bytes. Files are not opened here: a dataset is checked when the job starts.
 */
export function parseJobSpec(input: unknown): { spec: JobSpec; graph: GraphData } {
  const r = new SpecReader('job spec');
  const o = r.object(input, 'spec');
  if (!o) return r.done() as never;
  const kind = r.oneOf(o.kind, ['train', 'run'], 'kind', 'train');
  const { bytes, graph } = readGraph(r, o.graph);
  const common = {
    name: r.string(o.name, 'name', 'job'),
    ...(o.submissionId !== undefined ? { submissionId: r.string(o.submissionId, 'submissionId') } : {}),
    graph: bytes,
    device: r.string(o.device, 'device', DEFAULT_DEVICE),
  };
  let spec: JobSpec | undefined;
  if (kind === 'run') {
    r.onlyKeys(o, ['kind', 'name', 'submissionId', 'graph', 'device', 'feeds', 'fetches'], '');
    spec = {
      ...common,
      kind,
      feeds: readFeeds(r, o.feeds ?? {}),
      fetches: r.strings(o.fetches, 'fetches') ?? [],
    } as RunJobSpec;
  } else if (kind === 'train') {
    r.onlyKeys(
      o,
      [
        'kind',
        'name',
        'submissionId',
        'graph',
        'device',
        'loss',
        'report',
        'optimizer',
        'dataset',
        'loop',
        'parallelism',
        'checkpoint',
        'recovery',
        'evaluate',
      ],
      '',
    );
    spec = {
      ...common,
      kind,
      loss: r.string(o.loss, 'loss'),
      report: r.strings(o.report, 'report', []),
      optimizer: readOptimizer(r, o.optimizer),
      dataset: readDataset(r, o.dataset, 'dataset'),
      loop: readLoop(r, o.loop),
      parallelism: readParallelism(r, o.parallelism),
      ...(o.checkpoint !== undefined ? { checkpoint: readCheckpoint(r, o.checkpoint) } : {}),
      recovery: readRecovery(r, o.recovery),
      ...(o.evaluate !== undefined ? { evaluate: readEvaluate(r, o.evaluate) } : {}),
    } as TrainJobSpec;
  }
  r.done();
  // The fields are sound; now check them against the graph they refer to.
  const g = new SpecReader('job spec');
  checkAgainstGraph(g, spec!, graph!);
  g.done();
  return { spec: spec!, graph: graph! };
}

function readGraph(r: SpecReader, value: unknown): { bytes?: Uint8Array; graph?: GraphData } {
  try {
    if (value instanceof Uint8Array) return { bytes: value, graph: deserializeGraph(value) };
    if (typeof value === 'object' && value !== null) {
      const graph = value as GraphData;
      return { bytes: serializeGraph(graph), graph };
    }
    r.problem('graph', 'must be a kiln graph (the bytes of serializeGraph, or graph data)');
  } catch (e) {
    r.problem('graph', e instanceof Error ? e.message : String(e));
  }
  return {};
}

function readOptimizer(r: SpecReader, value: unknown): OptimizerSpec | undefined {
  const o = r.object(value, 'optimizer');
  if (!o) return undefined;
  const kind = r.oneOf(o.kind, ['adam', 'sgd'], 'optimizer.kind');
  const learningRate = r.positive(o.learningRate, 'optimizer.learningRate');
  if (kind === 'sgd') {
    r.onlyKeys(o, ['kind', 'learningRate', 'momentum'], 'optimizer');
    if (o.momentum !== undefined && !(typeof o.momentum === 'number' && o.momentum >= 0 && o.momentum < 1))
      r.problem('optimizer.momentum', 'must be a number in [0, 1)');
    return {
      kind,
      learningRate: learningRate!,
      ...(o.momentum !== undefined ? { momentum: o.momentum as number } : {}),
    };
  }
  r.onlyKeys(o, ['kind', 'learningRate', 'beta1', 'beta2', 'epsilon'], 'optimizer');
  const extra: Record<string, number> = {};
  for (const key of ['beta1', 'beta2', 'epsilon'] as const) {
    if (o[key] === undefined) continue;
    const v = r.positive(o[key], `optimizer.${key}`);
    if (v !== undefined) extra[key] = v;
  }
  return { kind: 'adam', learningRate: learningRate!, ...extra };
}

function readDataset(r: SpecReader, value: unknown, path: string): DatasetRef | undefined {
  const o = r.object(value, path);
  if (!o) return undefined;
  r.onlyKeys(o, ['files', 'feeds'], path);
  const files = typeof o.files === 'string' ? [o.files] : r.strings(o.files, `${path}.files`);
  if (files?.length === 0) r.problem(`${path}.files`, 'must name at least one safetensors file');
  return { files: files ?? [], feeds: r.stringMap(o.feeds, `${path}.feeds`) ?? {} };
}

function readLoop(r: SpecReader, value: unknown): TrainJobSpec['loop'] | undefined {
  const o = r.object(value, 'loop');
  if (!o) return undefined;
  r.onlyKeys(o, ['steps', 'epochs', 'batchSize', 'seed'], 'loop');
  if ((o.steps === undefined) === (o.epochs === undefined))
    r.problem('loop', 'give exactly one of steps and epochs');
  return {
    ...(o.steps !== undefined ? { steps: r.integer(o.steps, 'loop.steps', 1)! } : {}),
    ...(o.epochs !== undefined ? { epochs: r.integer(o.epochs, 'loop.epochs', 1)! } : {}),
    batchSize: r.integer(o.batchSize, 'loop.batchSize', 1)!,
    seed: r.integer(o.seed, 'loop.seed', 0, 0, 2 ** 31 - 1)!,
  };
}

function readParallelism(r: SpecReader, value: unknown): Parallelism | undefined {
  if (value === undefined) return { kind: 'none' };
  const o = r.object(value, 'parallelism');
  if (!o) return undefined;
  const kind = r.oneOf(o.kind, ['none', 'data', 'graph'], 'parallelism.kind');
  if (kind === 'data') {
    r.onlyKeys(o, ['kind', 'workers', 'microBatches'], 'parallelism');
    const workers = r.integer(o.workers, 'parallelism.workers', 1)!;
    if (o.microBatches === undefined) return { kind, workers };
    return { kind, workers, microBatches: r.integer(o.microBatches, 'parallelism.microBatches', 1)! };
  }
  r.onlyKeys(o, ['kind'], 'parallelism');
  return kind ? { kind } : undefined;
}

function readCheckpoint(r: SpecReader, value: unknown): TrainJobSpec['checkpoint'] {
  const o = r.object(value, 'checkpoint');
  if (!o) return undefined;
  r.onlyKeys(o, ['every', 'dir'], 'checkpoint');
  return { every: r.integer(o.every, 'checkpoint.every', 1)!, dir: r.string(o.dir, 'checkpoint.dir')! };
}

function readRecovery(r: SpecReader, value: unknown): TrainJobSpec['recovery'] {
  const o = value === undefined ? {} : r.object(value, 'recovery');
  if (o) r.onlyKeys(o, ['commitEvery', 'retries', 'replaceTimeoutMillis'], 'recovery');
  return {
    commitEvery: r.integer(o?.commitEvery, 'recovery.commitEvery', 1, 100)!,
    retries: r.integer(o?.retries, 'recovery.retries', 0, 3)!,
    replaceTimeoutMillis: r.integer(o?.replaceTimeoutMillis, 'recovery.replaceTimeoutMillis', 1, 60_000)!,
  };
}

function readEvaluate(r: SpecReader, value: unknown): TrainJobSpec['evaluate'] {
  const o = r.object(value, 'evaluate');
  if (!o) return undefined;
  r.onlyKeys(o, ['dataset', 'batchSize', 'outputs'], 'evaluate');
  return {
    dataset: readDataset(r, o.dataset, 'evaluate.dataset')!,
    batchSize: r.integer(o.batchSize, 'evaluate.batchSize', 1)!,
    outputs: r.strings(o.outputs, 'evaluate.outputs') ?? [],
  };
}

function readFeeds(r: SpecReader, value: unknown): Record<string, HostTensor> {
  const o = r.object(value, 'feeds');
  const out: Record<string, HostTensor> = {};
  for (const [name, v] of Object.entries(o ?? {})) {
    if (v instanceof HostTensor) {
      out[name] = v;
      continue;
    }
    const t = r.object(v, `feeds.${name}`);
    if (!t) continue;
    try {
      const dtype = (t.dtype ?? 'float32') as HostTensor['dtype'];
      const shape = t.shape as number[];
      const data = Array.isArray(t.data) ? t.data : [];
      const typed =
        dtype === 'float32'
          ? Float32Array.from(data as number[])
          : dtype === 'int32'
            ? Int32Array.from(data as number[])
            : Uint8Array.from(data as number[]);
      out[name] = new HostTensor(dtype, shape, typed);
    } catch (e) {
      r.problem(`feeds.${name}`, e instanceof KilnError ? e.message : String(e));
    }
  }
  return out;
}

/** The checks that need the graph: every name the spec uses is in it, with the right type. */
function checkAgainstGraph(r: SpecReader, spec: JobSpec, graph: GraphData): void {
  const outputs = Object.keys(graph.outputs);
  const placeholders = new Set(placeholderNodes(graph).map((p) => String(p.attrs.name)));
  const known = (names: Iterable<string>) => [...names].join(', ') || 'none';
  const output = (name: string, path: string, scalar: boolean) => {
    const id = graph.outputs[name];
    if (id === undefined)
      return r.problem(path, `the graph has no output '${name}'; its outputs: ${known(outputs)}`);
    const type = graph.values[id]!.type;
    if (scalar && (type.shape.length !== 0 || type.dtype !== 'float32'))
      r.problem(
        path,
        `output '${name}' must be a float32 scalar; it is ${type.dtype}[${type.shape.join(', ')}]`,
      );
  };
  const fedAll = (feeds: Readonly<Record<string, unknown>>, path: string) => {
    for (const name of Object.keys(feeds))
      if (!placeholders.has(name))
        r.problem(
          `${path}.${name}`,
          `the graph has no placeholder '${name}'; its placeholders: ${known(placeholders)}`,
        );
    for (const name of placeholders)
      if (!(name in feeds)) r.problem(path, `nothing feeds the graph's placeholder '${name}'`);
  };
  if (spec.kind === 'run') {
    spec.fetches.forEach((name, i) => output(name, `fetches[${i}]`, false));
    fedAll(spec.feeds, 'feeds');
    return;
  }
  output(spec.loss, 'loss', true);
  spec.report.forEach((name, i) => output(name, `report[${i}]`, true));
  fedAll(spec.dataset.feeds, 'dataset.feeds');
  if (spec.evaluate) {
    spec.evaluate.outputs.forEach((name, i) => output(name, `evaluate.outputs[${i}]`, true));
    fedAll(spec.evaluate.dataset.feeds, 'evaluate.dataset.feeds');
  }
  if (spec.parallelism.kind === 'data') checkDataParallel(r, spec.parallelism, spec.loop.batchSize);
  if (spec.parallelism.kind === 'graph' && graphDevices(graph).length === 0)
    r.problem(
      'parallelism',
      "'graph' needs device scopes in the graph (onDevice('worker:0', ...)); it has none",
    );
}

/** A batch splits evenly over the workers, or into the micro-batches, which the workers share. */
function checkDataParallel(
  r: SpecReader,
  { workers, microBatches }: Extract<Parallelism, { kind: 'data' }>,
  batchSize: number,
): void {
  if (microBatches === undefined) {
    if (batchSize % workers !== 0)
      r.problem('loop.batchSize', `${batchSize} does not split evenly over ${workers} data-parallel workers`);
    return;
  }
  if (batchSize % microBatches !== 0)
    r.problem(
      'loop.batchSize',
      `${batchSize} does not split into ${microBatches} equal micro-batches (parallelism.microBatches)`,
    );
  if (workers > microBatches)
    r.problem(
      'parallelism.workers',
      `${workers} workers for ${microBatches} micro-batches; each worker needs at least one (microBatches >= workers)`,
    );
}

/** The devices a graph's own scopes name, sorted. */
export function graphDevices(graph: GraphData): string[] {
  return [...new Set(graph.nodes.flatMap((n) => (n.device ? [n.device] : [])))].sort();
}

/** How many workers a job holds while it runs, or which ones by name. */
export function workersNeeded(spec: JobSpec, graph: GraphData): { count: number; named?: string[] } {
  if (spec.kind === 'run' || spec.parallelism.kind === 'none') return { count: 1 };
  if (spec.parallelism.kind === 'data') return { count: spec.parallelism.workers };
  const named = graphDevices(graph);
  return { count: named.length, named };
}
