import {
  add,
  cond,
  eliminateDeadCode,
  Graph,
  type GraphData,
  greater,
  interpret,
  less,
  mul,
  neg,
  optimize,
  Prng,
  type RefTensor,
  refTensor,
  relu,
  sum,
  tensor,
  verifyGraph,
  whileLoop,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

const ops = (g: GraphData) => g.nodes.map((n) => n.op);
const countOp = (g: GraphData, op: string): number =>
  g.nodes.reduce(
    (n, node) =>
      n +
      (node.op === op ? 1 : 0) +
      Object.values(node.attrs).reduce(
        (m: number, a) =>
          m + (a && typeof a === 'object' && 'results' in a ? countOp(a as unknown as GraphData, op) : 0),
        0,
      ),
    0,
  );

/** Runs a graph with the reference interpreter, feeding placeholders by name. */
function run(g: GraphData, feeds: Record<string, RefTensor>, output: string): Float64Array {
  const bound = new Map(
    g.nodes.filter((n) => n.op === 'placeholder').map((n) => [n.outputs[0]!, feeds[n.attrs.name as string]!]),
  );
  const nodes = g.nodes.filter((n) => n.op !== 'placeholder').map((n) => n.id);
  return interpret(g, nodes, bound).get(g.outputs[output]!)!.data;
}

describe('constant folding', () => {
  it('folds arithmetic on constants and leaves the rest computing the same', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const k = mul(add(tensor(g, [1, 2, 3], [3]), 4), 0.5);
    g.output('y', relu(mul(x, k)));
    const { graph, report } = optimize(g);
    verifyGraph(graph);
    // mul and relu end up in one fusion group.
    expect(ops(graph)).toEqual(['placeholder', 'constant', 'fused']);
    expect(report.map((r) => r.pass)).toEqual([
      'constant folding',
      'algebraic simplification',
      'common-subexpression elimination',
      'dead-code elimination',
      'elementwise fusion',
      'dead-code elimination',
    ]);
    const x0 = refTensor('float32', [3], [1, -2, 3]);
    expect(run(graph, { x: x0 }, 'y')).toEqual(run(g, { x: x0 }, 'y'));
  });

  it('replaces a cond on a constant predicate by the branch it takes', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const [y] = cond(
      g,
      greater(tensor(g, [1], []), 0),
      [x],
      (a) => [relu(a)],
      (a) => [neg(a)],
    );
    g.output('y', y!);
    const { graph } = optimize(g);
    verifyGraph(graph);
    expect(countOp(graph, 'cond')).toBe(0);
    expect(ops(graph)).toEqual(['placeholder', 'relu']);
  });

  it('runs a while loop on constants to its end, and folds inside the regions of others', () => {
    const g = new Graph();
    const [n] = whileLoop(
      g,
      [tensor(g, [0], [], 'int32')],
      (i) => less(i, 7),
      (i) => [add(i, 1)],
    );
    g.output('n', n!);
    const folded = optimize(g).graph;
    expect(ops(folded)).toEqual(['constant']);
    expect(Array.from(run(folded, {}, 'n'))).toEqual([7]);

    const h = new Graph();
    const x = h.placeholder('float32', [2], 'x');
    const [r] = whileLoop(
      h,
      [x],
      (a) => greater(sum(a), 1),
      (a) => [mul(a, add(tensor(a.graph, [0.25], []), 0.25))],
    );
    h.output('r', r!);
    const inner = optimize(h).graph;
    const body = inner.nodes.find((node) => node.op === 'while')!.attrs.body as GraphData;
    expect(countOp(body, 'add')).toBe(0);
    const x0 = refTensor('float32', [2], [8, 6]);
    expect(run(optimize(h).graph, { x: x0 }, 'r')).toEqual(run(h, { x: x0 }, 'r'));
  });
});

describe('dead-code elimination', () => {
  it('drops what no output needs, keeps assigns and placeholders, and trims unused cond results', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const unused = g.placeholder('float32', [2], 'unused');
    mul(unused, 3);
    const v = g.variable('v', tensor(g, [0, 0], [2]));
    g.assign(v, add(v, x));
    const [a, b] = cond(
      g,
      greater(sum(x), 0),
      [x],
      (t) => [relu(t), mul(t, 9)],
      (t) => [neg(t), mul(t, 8)],
    );
    g.output('a', a!);
    const { graph } = eliminateDeadCode(g);
    verifyGraph(graph);
    expect(ops(graph).filter((o) => o === 'mul')).toHaveLength(0);
    expect(ops(graph)).toContain('assign');
    expect(ops(graph).filter((o) => o === 'placeholder')).toHaveLength(2);
    const c = graph.nodes.find((n) => n.op === 'cond')!;
    expect(c.outputs).toHaveLength(1);
    expect(countOp(c.attrs.then as GraphData, 'mul') + countOp(c.attrs.else as GraphData, 'mul')).toBe(0);
    expect(b).toBeDefined();
  });

  it('keeps optimized graphs computing what the originals do on random inputs', () => {
    const rng = new Prng(9);
    for (let trial = 0; trial < 20; trial++) {
      const g = new Graph();
      const x = g.placeholder('float32', [3], 'x');
      const c1 = add(tensor(g, [rng.normal()], []), rng.normal());
      const [y] = cond(
        g,
        greater(sum(x), c1),
        [x, c1],
        (t, k) => [mul(t, k)],
        (t, k) => [add(relu(t), k)],
      );
      const [z] = whileLoop(
        g,
        [y!],
        (t) => greater(sum(mul(t, t)), 1),
        (t) => [mul(t, 0.5)],
      );
      g.output('z', z!);
      const { graph } = optimize(g);
      verifyGraph(graph);
      const x0 = refTensor('float32', [3], [rng.normal() * 3, rng.normal() * 3, rng.normal() * 3]);
      expect(run(graph, { x: x0 }, 'z')).toEqual(run(g, { x: x0 }, 'z'));
    }
  });
});
