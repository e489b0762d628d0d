import {
  Adam,
  dataParallel,
  Graph,
  type GraphData,
  type HostTensor,
  type Optimizer,
  SGD,
  type SymbolicTensor,
  shardBatch,
} from '@kiln/ir';
import type { OptimizerSpec, TrainJobSpec } from './job-spec.js';

/**
 * A training job's step as a graph: the forward graph of the spec with the optimizer added, on
 * the workers the job was given. `feeds` turns one batch (by forward placeholder) into the
 * step's feeds; `variables` maps each forward variable to the name it has on the workers. Every
 * variable the step has, the optimizer's included, is under the job's prefix.
 */
export interface TrainingGraph {
  readonly graph: Graph;
  readonly loss: SymbolicTensor;
  readonly train: SymbolicTensor[];
  /**
   * Each report output, as one tensor per replica (or per micro-batch, each the mean over an equal
   * part of the batch): the metric is their mean.
   */
  readonly report: ReadonlyMap<string, readonly SymbolicTensor[]>;
  /** The batch, by forward placeholder -> the step's feeds. */
  feeds(batch: Record<string, HostTensor>): Record<string, HostTensor>;
  /** Forward variable name (as in the spec's graph) -> its name on the workers. */
  readonly variables: ReadonlyMap<string, string>;
  /** Outputs for evaluation, fed by `evalFeeds` with a whole evaluation batch on one worker. */
  output(name: string): SymbolicTensor;
  evalFeeds(batch: Record<string, HostTensor>): Record<string, HostTensor>;
}

export function optimizerFor(spec: OptimizerSpec): Optimizer {
  return spec.kind === 'adam' ? new Adam(spec) : new SGD(spec);
}

/**
 * Gives every variable of a graph a prefix (`job7/dense1/w`): jobs share their workers' variable
 * namespace, and two jobs of the same model must not share weights.
 */
export function prefixVariables(graph: GraphData, prefix: string): GraphData {
  const renamed = (name: unknown) => `${prefix}/${String(name)}`;
  return {
    ...graph,
    nodes: graph.nodes.map((n) =>
      n.op === 'variable'
        ? { ...n, attrs: { ...n.attrs, name: renamed(n.attrs.name) } }
        : n.op === 'assign'
          ? { ...n, attrs: { ...n.attrs, variable: renamed(n.attrs.variable) } }
          : n,
    ),
    initializers: graph.initializers.map((i) => ({ ...i, variable: renamed(i.variable) })),
  };
}

/** Places every node the graph did not place itself on `device`. */
export function pinTo(graph: GraphData, device: string): GraphData {
  return { ...graph, nodes: graph.nodes.map((n) => (n.device ? n : { ...n, device })) };
}

const variableNames = (graph: GraphData) =>
  graph.nodes.filter((n) => n.op === 'variable').map((n) => String(n.attrs.name));

/** Builds the step for `spec` on `workers` (in order), with variables under `prefix`. */
export function trainingGraph(
  spec: TrainJobSpec,
  forward: GraphData,
  workers: readonly string[],
  prefix: string,
): TrainingGraph {
  if (spec.parallelism.kind === 'graph') {
    // The graph's own device scopes place it; the optimizer's updates go where their variables are.
    const g = Graph.from(prefixVariables(forward, prefix));
    const loss = g.tensor(spec.loss);
    const train = g.scope(prefix, () => optimizerFor(spec.optimizer).minimize(loss));
    const identity = (batch: Record<string, HostTensor>) => batch;
    return {
      graph: g,
      loss,
      train,
      report: new Map(spec.report.map((name) => [name, [g.tensor(name)]])),
      feeds: identity,
      variables: new Map(variableNames(forward).map((name) => [name, `${prefix}/${name}`])),
      output: (name) => g.tensor(name),
      evalFeeds: identity,
    };
  }
  // 'none' is data parallelism over one worker: one code path, and the same numbers.
  const microBatches = spec.parallelism.kind === 'data' ? spec.parallelism.microBatches : undefined;
  const dp = dataParallel(forward, {
    devices: workers,
    loss: spec.loss,
    shard: Object.keys(spec.dataset.feeds),
    optimizer: optimizerFor(spec.optimizer),
    scope: prefix,
    ...(microBatches === undefined ? {} : { microBatches }),
  });
  return {
    graph: dp.graph,
    loss: dp.loss,
    train: dp.train,
    report: new Map(spec.report.map((name) => [name, dp.outputs.get(name)!])),
    feeds: (batch) => shardBatch(batch, dp),
    variables: new Map([...dp.variables].map(([name, copies]) => [name, copies[0]!])),
    output: (name) => dp.outputs.get(name)![0]!,
    // Replica 0 (micro-batch 0) evaluates alone: its placeholders take a batch of any size the
    // forward graph allows.
    evalFeeds: (batch) =>
      Object.fromEntries(Object.entries(batch).map(([name, t]) => [dp.feeds.get(name)![0]!, t])),
  };
}
