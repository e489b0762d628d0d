import { add, Graph, type GraphData, KilnError, matmul, relu, tensor, verifyGraph } from '@kiln/ir';
import { describe, expect, it } from 'vitest';

function model(): GraphData {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 3], 'x');
  const w = g.variable('w', tensor(g, [1, 2, 3, 4, 5, 6], [3, 2]));
  const y = relu(add(matmul(x, w), 1));
  g.assign(w, add(w, 1));
  g.output('y', y);
  return structuredClone({
    nodes: g.nodes,
    values: g.values,
    initializers: g.initializers,
    outputs: g.outputs,
  });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };
const broken = (mutate: (g: Mutable<GraphData>) => void): GraphData => {
  const g = model() as Mutable<GraphData>;
  mutate(g);
  return g as GraphData;
};

function verifyError(g: GraphData): string {
  try {
    verifyGraph(g);
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe('verify');
    return (e as Error).message;
  }
  throw new Error('the graph verified');
}

const find = (g: GraphData, op: string) => g.nodes.findIndex((n) => n.op === op);

describe('verifyGraph', () => {
  it('accepts what the builder makes', () => {
    expect(() => verifyGraph(model())).not.toThrow();
  });

  it.each([
    [
      'an unknown op',
      (g: Mutable<GraphData>) => (g.nodes[1]!.op = 'frobnicate' as never),
      /node #1: unknown op 'frobnicate'/,
    ],
    [
      'a use before definition',
      (g: Mutable<GraphData>) => ((g.nodes[find(g, 'matmul')]!.inputs as number[])[0] = 99),
      /input 0 refers to %99, which is not defined before this node/,
    ],
    [
      'a wrong recorded type',
      (g: Mutable<GraphData>) =>
        (g.values[g.nodes[find(g, 'matmul')]!.outputs[0]!]!.type = { dtype: 'float32', shape: [null, 7] }),
      /\(matmul.*recorded as f32\[\?,7\] but its inputs give f32\[\?,2\]/,
    ],
    [
      'a bad attribute',
      (g: Mutable<GraphData>) =>
        ((g.nodes[find(g, 'matmul')]!.attrs as Record<string, unknown>).transposeA = 'yes'),
      /attribute 'transposeA': expected a boolean/,
    ],
    [
      'an unknown attribute',
      (g: Mutable<GraphData>) => ((g.nodes[find(g, 'relu')]!.attrs as Record<string, unknown>).alpha = 1),
      /unknown attribute 'alpha'/,
    ],
    [
      'the wrong arity',
      (g: Mutable<GraphData>) => (g.nodes[find(g, 'relu')]!.inputs as number[]).push(0),
      /\(relu.*has 2 inputs/,
    ],
    [
      'an assign to no variable',
      (g: Mutable<GraphData>) =>
        ((g.nodes[find(g, 'assign')]!.attrs as Record<string, unknown>).variable = 'nope'),
      /assigns to 'nope', which no earlier variable node declares/,
    ],
    [
      'a variable without initializer',
      (g: Mutable<GraphData>) => (g.initializers as unknown[]).pop(),
      /variable 'w' has no initializer/,
    ],
    [
      'a dangling output',
      (g: Mutable<GraphData>) => ((g.outputs as Record<string, number>).y = 1234),
      /output 'y' refers to %1234/,
    ],
    [
      'a duplicate name',
      (g: Mutable<GraphData>) => (g.nodes[2]!.name = g.nodes[1]!.name!),
      /name '.*' is also used by node #1/,
    ],
  ])('rejects %s, naming where', (_, mutate, message) => {
    expect(verifyError(broken(mutate))).toMatch(message);
  });
});
