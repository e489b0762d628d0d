import { KilnError } from '../errors.js';
import { opDef } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import type { RefTensor } from '../ref-tensor.js';
import { isConcrete, sizeOf, type TensorType } from '../shape.js';
import { describeNode, type Node } from './graph.js';

/** Limits on one evaluation with the reference implementations (see ReferenceBudget). */
export interface ReferenceLimits {
  /** Loop iterations, nested loops included. */
  readonly iterations: number;
  /** Work units: each node costs its flops (from its cost model) or its output size, at least 1. */
  readonly work: number;
  /** Bytes the evaluation allocates for values, intermediates included, summed (not peak). */
  readonly bytes: number;
}

/**
 * What it costs to evaluate a graph with the reference implementations, counted as it goes and
 * cut off at limits. Constant folding runs graphs it did not write, at compile time, on the
 * caller's thread: a loop on constants may never end and an intermediate may be huge, so folding
 * evaluates under a budget and, when it runs out, leaves that node unfolded (the device runs it,
 * under the run's own limits). Costs are charged before a value is allocated wherever its type is
 * known, so an oversized intermediate is refused, not built.
 */
export class ReferenceBudget {
  iterations = 0;
  work = 0;
  bytes = 0;

  constructor(readonly limits: ReferenceLimits) {}

  /** Charges one loop iteration. */
  iteration(where: string): void {
    if (++this.iterations > this.limits.iterations)
      throw exceeded(`${where}: more than ${this.limits.iterations} loop iterations`);
  }

  /** Charges a node's evaluation, given the concrete types of its inputs and results. */
  node(node: Node, inputs: readonly ConcreteType[], outputs: readonly ConcreteType[]): void {
    const elements = outputs.reduce((n, t) => n + sizeOf(t.shape), 0);
    const flops = opDef(node.op).cost(inputs, outputs, node.attrs as never).flops;
    this.work += Math.max(1, flops, elements);
    this.bytes += elements * Float64Array.BYTES_PER_ELEMENT;
    if (this.work > this.limits.work)
      throw exceeded(`${describeNode(node)}: more than ${this.limits.work} work units`);
    if (this.bytes > this.limits.bytes)
      throw exceeded(`${describeNode(node)}: more than ${this.limits.bytes} bytes of values`);
  }
}

const exceeded = (message: string) => new KilnError('limit', `reference evaluation budget: ${message}`);

let active: ReferenceBudget | null = null;

/**
 * Runs `fn` with `budget` charged by every reference evaluation inside it (interpret, the regions
 * of control flow, nested loops): the reference implementations are synchronous, so the budget
 * in force is simply the innermost one.
 */
export function withReferenceBudget<T>(budget: ReferenceBudget, fn: () => T): T {
  const outer = active;
  active = budget;
  try {
    return fn();
  } finally {
    active = outer;
  }
}

/** The budget in force, if any. */
export function activeReferenceBudget(): ReferenceBudget | null {
  return active;
}

/**
 * Evaluates one node with its reference implementation, charged to the budget in force: before
 * it runs where `outputs` (its declared result types) are concrete, after it where a region left a
 * dimension unknown. Control flow is not charged itself; its regions' nodes are, as they run.
 */
export function evaluateNode(
  node: Node,
  inputs: readonly RefTensor[],
  outputs: readonly TensorType[],
): RefTensor[] {
  const budget = active;
  const charged = budget !== null && opDef(node.op).kind !== 'control';
  const known = outputs.every((t) => isConcrete(t.shape));
  if (charged && known) budget.node(node, inputs, outputs as ConcreteType[]);
  const results = opDef(node.op).reference(inputs as RefTensor[], node.attrs as never);
  if (charged && !known) budget.node(node, inputs, results);
  return results;
}
