import { add, div } from '../api/ops.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import type { GraphData } from '../graph/graph.js';
import type { Replica } from './replicate.js';

/**
 * What a data-parallel graph makes of its copies of the forward graph, with or without fixed
 * micro-batches: one reported loss, and each forward output once per copy.
 */

/**
 * The copies' losses summed in copy order on `device` and divided once: the mean over equal
 * shares of the batch, the same value every run (an order that changed with the arrival of the
 * values would change the last bits).
 */
export function meanLoss(g: Graph, device: string, losses: readonly SymbolicTensor[]): SymbolicTensor {
  return g.onDevice(device, () =>
    losses.length === 1
      ? losses[0]!
      : div(
          losses.reduce((a, b) => add(a, b, 'loss/sum')),
          losses.length,
          'loss/mean',
        ),
  );
}

/** Each output of the forward graph as one named output per copy, copy k's named `name(output, k)`. */
export function copiesOutputs(
  g: Graph,
  forward: GraphData,
  copies: readonly Replica[],
  name: (output: string, k: number) => string,
): Map<string, SymbolicTensor[]> {
  return new Map(
    Object.entries(forward.outputs).map(([output, id]) => [
      output,
      copies.map((copy, k) => g.output(name(output, k), copy.tensor(id))),
    ]),
  );
}
