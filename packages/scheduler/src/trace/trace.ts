import { KilnError, type SymbolicTensor } from '@kiln/ir';
import { defaultEagerContext, type EagerContext } from '../eager/context.js';
import { Tensor } from '../eager/tensor.js';
import { GraphFunction } from './graph-function.js';
import { flatten, type Structure } from './structure.js';
import { TraceGraph } from './trace-graph.js';

export interface TraceOptions {
  /**
   * true (the default): reading a traced tensor's value to steer JS throws a GraphBreak error.
   * false: it warns, answers with the example's value, and freezes that branch into the graph.
   */
  readonly strict?: boolean;
  /** Used in messages; defaults to the function's name. */
  readonly name?: string;
}

/** What a trace recorded: the graph, and how it maps to the function's arguments and result. */
export interface Traced {
  readonly graph: TraceGraph;
  /** Placeholders for the tensor arguments, in order (named input0, input1, ...). */
  readonly inputs: readonly SymbolicTensor[];
  /** Eager tensors the function closed over; each became a graph input (capture0, ...). */
  readonly captures: readonly Tensor[];
  readonly captureInputs: readonly SymbolicTensor[];
  readonly outputs: readonly SymbolicTensor[];
  readonly structure: Structure;
  /** Compiles the graph for its device: callable with new tensors of the same types. */
  toFunction(): GraphFunction;
}

const isSymbolic = (x: unknown): x is SymbolicTensor =>
  typeof x === 'object' && x !== null && 'graph' in x && 'id' in x;

export function traceWith(
  options: TraceOptions,
  fn: (...args: never[]) => unknown,
  ...examples: readonly unknown[]
): Traced {
  const name = options.name ?? (fn.name || 'the traced function');
  const tensors = examples.filter((x): x is Tensor => x instanceof Tensor);
  const eager: EagerContext = tensors[0]?.context ?? defaultEagerContext();
  const graph = new TraceGraph(eager, options.strict === false ? 'freeze' : 'error', name);
  const inputs: SymbolicTensor[] = [];
  const args = examples.map((x) => {
    if (!(x instanceof Tensor)) return x;
    if (x.context !== eager)
      throw new KilnError('invalid-argument', `trace of ${name}: arguments live on different devices`);
    const p = graph.input(`input${inputs.length}`, x);
    inputs.push(p);
    return p;
  });
  try {
    const result = (fn as (...a: unknown[]) => unknown)(...args);
    const { leaves, structure } = flatten(result, isSymbolic, name);
    leaves.forEach((t, i) => {
      if (t.graph !== graph)
        throw new KilnError(
          'invalid-argument',
          `${name} returned a tensor that was not computed from its traced inputs`,
        );
      graph.output(structure.kind === 'record' ? structure.keys[i]! : `output${i}`, t);
    });
    const captures = [...graph.captures.keys()];
    const captureInputs = [...graph.captures.values()];
    return {
      graph,
      inputs,
      captures,
      captureInputs,
      outputs: leaves,
      structure,
      toFunction: () => new GraphFunction(eager, graph, inputs, captures, captureInputs, leaves, name),
    };
  } finally {
    graph.disposeShadows(new Set([...tensors, ...graph.captures.keys()]));
  }
}

/**
 * Runs `fn` once on tracer tensors standing for `examples` and returns the IR graph it built
 * (TorchScript's trace). Non-tensor arguments are passed through and baked in. Data-dependent
 * JS control flow cannot be recorded: reading a traced value throws (see traceWith for a mode
 * that freezes the branch instead, with a warning).
 */
export function trace(fn: (...args: never[]) => unknown, ...examples: readonly unknown[]): Traced {
  return traceWith({}, fn, ...examples);
}
