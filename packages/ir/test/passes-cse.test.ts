import {
  add,
  cond,
  eliminateCommonSubexpressions,
  exp,
  Graph,
  type GraphData,
  greater,
  maximum,
  mul,
  randomNormal,
  refTensor,
  sub,
  sum,
  tensor,
  verifyGraph,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { runOutput as run } from './fixtures/run-output.js';

const count = (g: GraphData, op: string) => g.nodes.filter((n) => n.op === op).length;

describe('common-subexpression elimination', () => {
  it('merges identical nodes, transitively, and commuted operands of commutative ops', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const y = g.placeholder('float32', [3], 'y');
    const a = exp(mul(x, y));
    const b = exp(mul(y, x)); // mul commutes: the same value
    g.output('s', add(a, b));
    g.output('d', sub(maximum(x, y), maximum(y, x)));
    g.output('n', sub(x, y));
    g.output('m', sub(y, x)); // sub does not commute: kept
    const { graph, merged, valueMap } = eliminateCommonSubexpressions(g);
    verifyGraph(graph);
    expect(merged).toBe(3);
    expect(count(graph, 'mul')).toBe(1);
    expect(count(graph, 'exp')).toBe(1);
    expect(count(graph, 'maximum')).toBe(1);
    expect(count(graph, 'sub')).toBe(3);
    expect(valueMap.get(a.id)).toBe(valueMap.get(b.id));
    const feeds = { x: refTensor('float32', [3], [1, -2, 0.5]), y: refTensor('float32', [3], [0.25, 3, -1]) };
    for (const out of ['s', 'd', 'n', 'm']) expect(run(graph, feeds, out)).toEqual(run(g, feeds, out));
  });

  it('merges constants with the same dtype, shape and bytes only', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    g.output('a', add(x, tensor(g, [1, 2], [2])));
    g.output('b', add(x, tensor(g, [1, 2], [2])));
    g.output('c', add(x, tensor(g, [1, 3], [2])));
    g.output('d', mul(x, tensor(g, [-0], [])));
    g.output('e', mul(x, tensor(g, [0], [])));
    const { graph, merged } = eliminateCommonSubexpressions(g);
    verifyGraph(graph);
    // The second [1, 2] and the add reading it merge; -0 and 0 differ in their bytes and stay apart.
    expect(merged).toBe(2);
    expect(count(graph, 'constant')).toBe(4);
    expect(graph.outputs.a).toBe(graph.outputs.b);
    expect(graph.outputs.c).not.toBe(graph.outputs.a);
    expect(graph.outputs.d).not.toBe(graph.outputs.e);
  });

  it('merges identical random draws (pure functions of seed and counter) but not different ones', () => {
    const g = new Graph();
    g.output('a', randomNormal(g, [4], { seed: 1 }));
    g.output('b', randomNormal(g, [4], { seed: 1 }));
    g.output('c', randomNormal(g, [4], { seed: 1, counter: 1 }));
    g.output('d', randomNormal(g, [4], { seed: 2 }));
    const { graph, merged } = eliminateCommonSubexpressions(g);
    expect(merged).toBe(1);
    expect(graph.outputs.a).toBe(graph.outputs.b);
    expect(new Set(Object.values(graph.outputs)).size).toBe(3);
  });

  it('never merges placeholders, variables or assigns', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = g.placeholder('float32', [2], 'y');
    const v = g.variable('v', tensor(g, [0, 0], [2]));
    const w = g.variable('w', tensor(g, [0, 0], [2]));
    g.assign(v, add(v, x));
    g.assign(w, add(w, x));
    g.output('s', add(x, y));
    const { graph } = eliminateCommonSubexpressions(g);
    verifyGraph(graph);
    expect(count(graph, 'placeholder')).toBe(2);
    expect(count(graph, 'variable')).toBe(2);
    expect(count(graph, 'assign')).toBe(2);
  });

  it('works inside each region on its own', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const [r] = cond(
      g,
      greater(sum(x), 0),
      [x],
      (t) => [add(exp(t), exp(t))],
      (t) => [mul(exp(t), 2)],
    );
    g.output('r', r!);
    const { graph, merged } = eliminateCommonSubexpressions(g);
    verifyGraph(graph);
    expect(merged).toBe(1);
    const node = graph.nodes.find((n) => n.op === 'cond')!;
    expect(count(node.attrs.then as GraphData, 'exp')).toBe(1);
    expect(count(node.attrs.else as GraphData, 'exp')).toBe(1);
    for (const data of [
      [1, 2, 3],
      [-1, -2, 0.5],
    ]) {
      const feeds = { x: refTensor('float32', [3], data) };
      expect(run(graph, feeds, 'r')).toEqual(run(g, feeds, 'r'));
    }
  });
});
