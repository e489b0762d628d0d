import { add, Graph, mul, relu, requiredNodes, tensor } from '@kiln/ir';
import { planSteps } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

describe('planSteps', () => {
  it('makes one segment of a graph without control flow, with only what it needs in and out', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = relu(add(mul(x, 2), 1));
    const steps = planSteps(
      g,
      g.nodes.map((n) => n.id),
      new Set([x.id]),
      [y.id],
    );
    expect(steps).toHaveLength(1);
    const [s] = steps;
    expect(s).toMatchObject({ kind: 'segment', inputs: [x.id], results: [y.id] });
  });

  it('resolves reads of an assign to the value it stores', () => {
    const g = new Graph();
    const v = g.variable('v', tensor(g, [1], []));
    const stored = add(v, 1);
    const assigned = g.assign(v, stored);
    const doubled = mul(assigned, 2);
    const aliases = new Map([[assigned.id, stored.id]]);
    const nodes = requiredNodes(g, [doubled.id, assigned.id]);
    const [s] = planSteps(g, nodes, new Set([v.id]), [doubled.id, assigned.id], aliases);
    expect(s).toMatchObject({ kind: 'segment', inputs: [v.id] });
    expect(s?.kind === 'segment' && [...s.results].sort()).toEqual([stored.id, doubled.id].sort());
  });
});
