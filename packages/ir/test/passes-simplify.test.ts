import {
  add,
  broadcastTo,
  cast,
  div,
  eliminateDeadCode,
  Graph,
  type GraphData,
  greater,
  logicalNot,
  mul,
  neg,
  pow,
  refTensor,
  reshape,
  simplify,
  sub,
  sum,
  tensor,
  transpose,
  verifyGraph,
  whileLoop,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { runOutput as run } from './fixtures/run-output.js';

const ops = (g: GraphData) => g.nodes.map((n) => n.op);

/** Simplifies, verifies, and returns the value the output now is, with the ops left. */
function simplified(g: Graph) {
  const r = simplify(g);
  verifyGraph(r.graph);
  const out = r.graph.outputs.y!;
  return { ...r, ops: ops(r.graph), producer: r.graph.nodes[r.graph.values[out]!.node]! };
}

describe('algebraic simplification', () => {
  it('drops multiplications by one, additions of zero and their relatives', () => {
    const cases: [string, (g: Graph, x: ReturnType<Graph['placeholder']>) => typeof x][] = [
      ['x*1', (_g, x) => mul(x, 1)],
      ['1*x', (g, x) => mul(tensor(g, [1, 1, 1], [3]), x)],
      ['x+0', (_g, x) => add(x, 0)],
      ['0+x', (g, x) => add(tensor(g, [0], [1, 1]), x)],
      ['x-0', (_g, x) => sub(x, 0)],
      ['x/1', (_g, x) => div(x, 1)],
      ['x**1', (_g, x) => pow(x, 1)],
      ['neg(neg(x))', (_g, x) => neg(neg(x))],
    ];
    for (const [what, f] of cases) {
      const g = new Graph();
      const x = g.placeholder('float32', [2, 3], 'x');
      g.output('y', f(g, x));
      const r = simplified(g);
      expect(r.producer.op, what).toBe('placeholder');
      expect(r.rewrites, what).toBeGreaterThan(0);
    }
  });

  it('keeps the op where the constant would change the type or the value', () => {
    const cases: [string, (g: Graph, x: ReturnType<Graph['placeholder']>) => typeof x][] = [
      // Broadcasting x up to the constant's larger shape changes the output type.
      ['x*ones[4,2,3]', (g, x) => mul(x, tensor(g, new Array(24).fill(1), [4, 2, 3]))],
      ['x*[1,2,1]', (g, x) => mul(x, tensor(g, [1, 2, 1], [3]))],
      // 0 - x is not x; x / 1 is not 1 / x; x * 0 is not 0 (NaN, infinities).
      ['0-x', (g, x) => sub(tensor(g, [0], []), x)],
      ['1/x', (g, x) => div(tensor(g, [1], []), x)],
      ['x*0', (_g, x) => mul(x, 0)],
      ['x+1', (_g, x) => add(x, 1)],
    ];
    for (const [what, f] of cases) {
      const g = new Graph();
      const x = g.placeholder('float32', [2, 3], 'x');
      g.output('y', f(g, x));
      const r = simplified(g);
      expect(r.producer.op, what).not.toBe('placeholder');
      expect(r.rewrites, what).toBe(0);
    }
  });

  it('composes transposes and reshapes, and drops those that change nothing', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 3, 4], 'x');
    g.output('identity', transpose(transpose(x, [1, 2, 0]), [2, 0, 1]));
    g.output('composed', transpose(transpose(x, [1, 0, 2]), [0, 2, 1]));
    g.output('reversed', transpose(transpose(x), null));
    g.output('reshaped', reshape(reshape(reshape(x, [6, 4]), [24]), [4, -1]));
    g.output('sameShape', reshape(x, [2, 3, 4]));
    g.output('roundTrip', reshape(reshape(x, [24]), [2, 3, 4]));
    g.output('cast', cast(x, 'float32'));
    g.output('broadcast', broadcastTo(x, [2, 3, 4]));
    g.output('broadcastTwice', broadcastTo(broadcastTo(x, [1, 2, 3, 4]), [5, 2, 3, 4]));
    g.output('not', logicalNot(logicalNot(greater(x, 0))));
    const { graph, rewrites } = simplify(g);
    verifyGraph(graph);
    const producer = (name: string) => graph.nodes[graph.values[graph.outputs[name]!]!.node]!;
    for (const name of ['identity', 'reversed', 'sameShape', 'roundTrip', 'cast', 'broadcast'])
      expect(producer(name).op, name).toBe('placeholder');
    expect(producer('composed').op).toBe('transpose');
    expect(producer('composed').attrs.perm).toEqual([1, 2, 0]);
    expect(graph.values[producer('composed').inputs[0]!]!.node).toBe(0);
    expect(producer('reshaped').op).toBe('reshape');
    expect(graph.values[producer('reshaped').inputs[0]!]!.node).toBe(0);
    expect(producer('broadcastTwice').op).toBe('broadcastTo');
    expect(graph.values[producer('broadcastTwice').inputs[0]!]!.node).toBe(0);
    expect(producer('not').op).toBe('greater');
    expect(rewrites).toBe(11);

    const x0 = refTensor(
      'float32',
      [2, 3, 4],
      Array.from({ length: 24 }, (_, i) => i * 0.5 - 3),
    );
    for (const name of Object.keys(g.outputs))
      expect(run(graph, { x: x0 }, name), name).toEqual(run(g, { x: x0 }, name));
  });

  it('keeps a cast that changes the dtype and a reshape that changes the shape', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 3], 'x');
    g.output('y', reshape(cast(x, 'int32'), [3, 2]));
    const r = simplified(g);
    expect(r.ops).toEqual(['placeholder', 'cast', 'reshape']);
    expect(r.rewrites).toBe(0);
  });

  it('simplifies inside regions', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const [r] = whileLoop(
      g,
      [x],
      (a) => greater(sum(a), 1),
      (a) => [mul(neg(neg(a)), add(tensor(a.graph, [0.5], []), 0))],
    );
    g.output('y', r!);
    const { graph: simple, rewrites } = simplify(g);
    // The inner neg is left for dead-code elimination.
    const { graph } = eliminateDeadCode(simple);
    verifyGraph(graph);
    expect(rewrites).toBe(2);
    const body = graph.nodes.find((n) => n.op === 'while')!.attrs.body as GraphData;
    expect(ops(body).filter((o) => o === 'neg')).toHaveLength(0);
    expect(ops(body).filter((o) => o === 'add')).toHaveLength(0);
    const x0 = refTensor('float32', [2], [8, 6]);
    expect(run(graph, { x: x0 }, 'y')).toEqual(run(g, { x: x0 }, 'y'));
  });
});
