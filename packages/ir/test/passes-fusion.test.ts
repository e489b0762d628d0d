import type { NodeQuery } from '@kiln/ir';
import {
  add,
  broadcastTo,
  cast,
  deserializeGraph,
  exp,
  FUSIBLE_OPS,
  formatPassReport,
  fuseElementwise,
  Graph,
  type GraphData,
  greater,
  KilnError,
  MAX_FUSED_STEPS,
  matmul,
  mul,
  neg,
  OP_NAMES,
  opDef,
  optimize,
  Prng,
  printGraph,
  randomFusedProgram,
  refTensor,
  relu,
  serializeGraph,
  sigmoid,
  sub,
  sum,
  tanh,
  tensor,
  verifyGraph,
  where,
  whileLoop,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { runOutput as run } from './fixtures/run-output.js';

const ops = (g: GraphData) => g.nodes.map((n) => n.op);

const ramp = (shape: number[], scale = 0.37, offset = -1) =>
  refTensor(
    'float32',
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i * scale + offset),
  );

describe('elementwise fusion', () => {
  it('fuses a chain with broadcast inputs into one node computing the same values', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 3], 'x');
    const b = g.placeholder('float32', [3], 'b');
    const y = mul(tanh(sub(sigmoid(add(mul(x, 1.5), b)), x)), exp(neg(mul(x, x))));
    g.output('y', y);
    const { graph, groups, fusedOps } = fuseElementwise(g);
    verifyGraph(graph);
    expect(groups).toBe(1);
    expect(fusedOps).toBe(9);
    expect(ops(graph).filter((o) => o === 'fused')).toHaveLength(1);
    expect(ops(graph).filter((o) => o !== 'placeholder' && o !== 'constant')).toEqual(['fused']);
    const feeds = { x: ramp([4, 3]), b: ramp([3], 0.5, -0.5) };
    expect(run(graph, feeds, 'y')).toEqual(run(g, feeds, 'y'));
    // The program is printed with the node, and names only ops and slots.
    expect(printGraph(graph)).toContain('program=[["mul",[0,1]]');
  });

  it('asks the device about each group and keeps the ops of a group it declines', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 3], 'x');
    g.output('y', exp(neg(mul(x, x))));
    const asked: NodeQuery[] = [];
    const declined = fuseElementwise(g, {
      accepts: (q) => {
        asked.push(q);
        return false;
      },
    });
    expect(declined.groups).toBe(0);
    expect(ops(declined.graph)).toEqual(ops(g));
    // The question is the fused node the group would have been, unknown dimensions counted as 1.
    expect(asked).toHaveLength(1);
    expect(asked[0]!.op).toBe('fused');
    expect(asked[0]!.inputs).toEqual([{ dtype: 'float32', shape: [1, 3] }]);
    expect(asked[0]!.outputs).toEqual([{ dtype: 'float32', shape: [1, 3] }]);
    expect(fuseElementwise(g, { accepts: () => true }).groups).toBe(1);
  });

  it('stops where an intermediate is read outside the group, or has a smaller shape', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 3], 'x');
    const v = g.placeholder('float32', [3], 'v');
    const small = exp(neg(v)); // shape [3]: its own group, not recomputed per row
    const shared = relu(mul(x, 2));
    g.output('a', add(tanh(shared), small));
    g.output('shared', shared); // read outside: ends a group
    const { graph, groups, fusedOps } = fuseElementwise(g);
    verifyGraph(graph);
    expect(groups).toBe(3); // exp(neg(v)); relu(mul(x, 2)); add(tanh(shared), small)
    expect(fusedOps).toBe(6);
    const feeds = { x: ramp([2, 3]), v: ramp([3]) };
    for (const out of ['a', 'shared']) expect(run(graph, feeds, out)).toEqual(run(g, feeds, out));
  });

  it('leaves single ops alone and splits groups at other kinds of ops', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 3], 'x');
    const w = g.placeholder('float32', [3, 3], 'w');
    const h = relu(matmul(x, w));
    g.output('y', sum(mul(add(h, 1), h), 1));
    const { graph, groups } = fuseElementwise(g);
    expect(groups).toBe(1);
    expect(ops(graph)).toEqual(['placeholder', 'placeholder', 'matmul', 'constant', 'fused', 'sum']);
    const single = new Graph();
    single.output('y', relu(single.placeholder('float32', [2], 'x')));
    expect(fuseElementwise(single).groups).toBe(0);
  });

  it('fuses comparisons, where, casts and int32 arithmetic', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [5], 'x');
    const k = g.placeholder('int32', [1], 'k');
    const i = mul(cast(x, 'int32'), k);
    const y = where(greater(x, 0), cast(add(i, 7), 'float32'), neg(x));
    g.output('y', y);
    const { graph, groups, fusedOps } = fuseElementwise(g);
    verifyGraph(graph);
    expect(groups).toBe(1);
    expect(fusedOps).toBe(7);
    const feeds = {
      x: refTensor('float32', [5], [-2.5, 3.7, 0, 1e10, -0.5]),
      k: refTensor('int32', [1], [3]),
    };
    expect(run(graph, feeds, 'y')).toEqual(run(g, feeds, 'y'));
  });

  it('fuses inside regions', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const [r] = whileLoop(
      g,
      [x],
      (a) => greater(sum(mul(a, a)), 1),
      (a) => [mul(tanh(add(a, 0.1)), 0.5)],
    );
    g.output('r', r!);
    const { graph, groups } = fuseElementwise(g);
    verifyGraph(graph);
    expect(groups).toBe(1);
    const body = graph.nodes.find((n) => n.op === 'while')!.attrs.body as GraphData;
    expect(ops(body).filter((o) => o === 'fused')).toHaveLength(1);
    const feeds = { x: refTensor('float32', [3], [4, -3, 2]) };
    expect(run(graph, feeds, 'r')).toEqual(run(g, feeds, 'r'));
  });

  it('reports groups in the pipeline, and the result survives serialization', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [8], 'x');
    g.output('y', relu(mul(add(x, 0), tanh(mul(x, 1)))));
    const { graph, report } = optimize(g);
    const fusion = report.find((r) => r.pass === 'elementwise fusion')!;
    expect(fusion.detail).toBe('1 group, 3 ops');
    expect(report.find((r) => r.pass === 'algebraic simplification')!.detail).toBe('2 rewrites');
    expect(formatPassReport(report)).toContain('elementwise fusion: 4 -> 2 nodes (1 group, 3 ops)');
    const back = deserializeGraph(serializeGraph(graph));
    expect(back.nodes.map((n) => n.attrs)).toEqual(graph.nodes.map((n) => n.attrs));
    const feeds = { x: ramp([8]) };
    expect(run(back, feeds, 'y')).toEqual(run(g, feeds, 'y'));
  });
});

describe('the fused op', () => {
  const fusedGraph = (attrs: Record<string, unknown>, inputs = 1): GraphData => {
    const g = new Graph();
    const ins = Array.from({ length: inputs }, (_, i) => g.placeholder('float32', [2], `in${i}`));
    const base = g.apply('fused', ins, { program: [['neg', [0]]], outputs: [inputs] });
    const node = g.nodes[base[0]!.node.id]!;
    return { ...g, nodes: g.nodes.map((n) => (n === node ? { ...n, attrs } : n)) };
  };
  const rejects = (attrs: Record<string, unknown>, inputs = 1) => {
    expect(() => verifyGraph(fusedGraph(attrs, inputs)), JSON.stringify(attrs)).toThrow(KilnError);
  };

  it('names every elementwise op but itself in its allowlist', () => {
    const elementwise = OP_NAMES.filter((op) => opDef(op).kind === 'elementwise' && op !== 'fused');
    expect(Object.keys(FUSIBLE_OPS).sort()).toEqual([...elementwise].sort());
  });

  it('accepts a valid program', () => {
    expect(() =>
      verifyGraph(
        fusedGraph({
          program: [
            ['neg', [0]],
            ['exp', [1]],
          ],
          outputs: [2],
        }),
      ),
    ).not.toThrow();
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const outs = g.apply('fused', [x], {
      program: [
        ['neg', [0]],
        ['greater', [1, 0]],
      ],
      outputs: [2, 1],
    });
    expect(outs.map((t) => t.type)).toEqual([
      { dtype: 'bool', shape: [2] },
      { dtype: 'float32', shape: [2] },
    ]);
  });

  it('rejects forged programs: unknown names, code, bad slots, wrong shapes of steps, too many steps', () => {
    const bad: Record<string, unknown>[] = [
      { program: [['constructor', [0]]], outputs: [1] },
      { program: [['__proto__', [0]]], outputs: [1] },
      { program: [['neg; globalThis.x = 1', [0]]], outputs: [1] },
      { program: [['x0 + 1', [0]]], outputs: [1] },
      { program: [['fused', [0]]], outputs: [1] },
      { program: [['sum', [0]]], outputs: [1] },
      { program: [['neg', [1]]], outputs: [1] }, // reads itself
      { program: [['neg', [5]]], outputs: [1] }, // reads a later slot
      { program: [['neg', [-1]]], outputs: [1] },
      { program: [['neg', [0.5]]], outputs: [1] },
      { program: [['neg', ['0']]], outputs: [1] },
      { program: [['neg', [0, 0]]], outputs: [1] }, // arity
      { program: [['add', [0]]], outputs: [1] },
      { program: [['neg', [0], 'float32']], outputs: [1] }, // only cast has a dtype
      { program: [['cast', [0]]], outputs: [1] },
      { program: [['cast', [0], 'float64']], outputs: [1] },
      { program: [['cast', [0], 'x0']], outputs: [1] },
      { program: [{ op: 'neg', args: [0] }], outputs: [1] },
      { program: [], outputs: [] },
      { program: [['neg', [0]]], outputs: [0] }, // an output must be a step
      { program: [['neg', [0]]], outputs: [2] },
      { program: [['neg', [0]]], outputs: [] },
      { program: [['neg', [0]]] },
      { program: [['neg', [0]]], outputs: [1], extra: 1 },
      { program: [['logicalNot', [0]]], outputs: [1] }, // float32 input: does not type
      { program: Array.from({ length: MAX_FUSED_STEPS + 1 }, (_, k) => ['neg', [k]]), outputs: [1] },
      { program: 'neg', outputs: [1] },
    ];
    for (const attrs of bad) rejects(attrs);
  });

  it('has a reference that is its ops applied one by one, on random programs', () => {
    const rng = new Prng(3);
    for (let trial = 0; trial < 100; trial++) {
      const attrs = randomFusedProgram(rng, ['float32', 'float32'], rng.int(1, 10));
      const g = new Graph();
      const a = g.placeholder('float32', [2, 3], 'a');
      const b = g.placeholder('float32', [3], 'b');
      const outs = g.apply('fused', [a, b], attrs as unknown as Record<string, unknown>);
      // The same program unfused, each step an op of its own, on b broadcast up front (elementwise
      // ops commute with broadcasting, so these are the values the fused node must give).
      const slots = [a, broadcastTo(b, [2, 3])];
      for (const step of attrs.program) {
        const stepAttrs = step[0] === 'cast' ? { dtype: step[2] } : {};
        slots.push(
          g.apply(
            step[0],
            step[1].map((s) => slots[s]!),
            stepAttrs,
          )[0]!,
        );
      }
      attrs.outputs.forEach((o, i) => {
        g.output(`fused${i}`, outs[i]!);
        g.output(`ops${i}`, slots[o]!);
      });
      verifyGraph(g);
      const feeds = { a: ramp([2, 3], 0.9, -2.2), b: ramp([3], -1.3, 1.1) };
      attrs.outputs.forEach((_, i) => {
        expect(run(g, feeds, `fused${i}`)).toEqual(run(g, feeds, `ops${i}`));
      });
    }
  });
});

describe('the optimize pipeline', () => {
  it('folds, simplifies, merges, cleans and fuses, in that order', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const k = add(tensor(g, [1], []), tensor(g, [1], [])); // folds to 2
    const a = mul(exp(mul(x, 1)), k);
    const b = mul(exp(x), k); // the same as a once x*1 is x
    g.output('y', relu(add(a, b)));
    const { graph, report } = optimize(g);
    verifyGraph(graph);
    expect(ops(graph)).toEqual(['placeholder', 'constant', 'fused']);
    expect(report.map((r) => r.detail)).toEqual([
      undefined,
      '1 rewrite',
      '4 nodes merged', // the two constants 1 (one now dead), then exp(x) and its product with k
      undefined,
      '1 group, 4 ops',
      undefined,
    ]);
    const feeds = { x: ramp([4]) };
    expect(run(graph, feeds, 'y')).toEqual(run(g, feeds, 'y'));
  });
});
