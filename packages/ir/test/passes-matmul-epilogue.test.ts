import type { NodeQuery, SupportOracle } from '@kiln/ir';
import {
  add,
  deserializeGraph,
  fuseElementwise,
  fuseMatmulEpilogues,
  Graph,
  type GraphData,
  greater,
  KilnError,
  matmul,
  mul,
  optimize,
  passesFor,
  refTensor,
  relu,
  serializeGraph,
  sum,
  tanh,
  verifyGraph,
  whileLoop,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { runOutput as run } from './fixtures/run-output.js';

const ops = (g: GraphData) => g.nodes.map((n) => n.op).filter((o) => o !== 'placeholder' && o !== 'constant');

const ramp = (shape: number[], scale = 0.37, offset = -1) =>
  refTensor(
    'float32',
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => ((i * scale) % 3) + offset),
  );

const always = { accepts: () => true };

/** A dense layer, y = relu(x w + b), fused elementwise first as the pipeline does. */
function dense() {
  const g = new Graph();
  const x = g.placeholder('float32', [4, 3], 'x');
  const w = g.placeholder('float32', [3, 5], 'w');
  const b = g.placeholder('float32', [5], 'b');
  const product = matmul(x, w);
  g.output('y', relu(add(product, b)));
  return { g, product };
}
const denseFeeds = { x: ramp([4, 3]), w: ramp([3, 5], 0.21, -0.4), b: ramp([5], 0.5, -0.8) };

describe('matmul epilogue fusion', () => {
  it("makes a dense layer's product, bias and relu one node computing the same values", () => {
    const { g } = dense();
    const grouped = fuseElementwise(g).graph;
    const { graph, fused } = fuseMatmulEpilogues(grouped, always);
    verifyGraph(graph);
    expect(fused).toBe(1);
    expect(ops(graph)).toEqual(['fusedMatmul']);
    const node = graph.nodes.find((n) => n.op === 'fusedMatmul')!;
    expect(node.attrs.program).toEqual([
      ['add', [0, 1]],
      ['relu', [2]],
    ]);
    expect(run(graph, denseFeeds, 'y')).toEqual(run(g, denseFeeds, 'y'));
    // It survives serialization.
    const back = deserializeGraph(serializeGraph(graph));
    expect(run(back, denseFeeds, 'y')).toEqual(run(g, denseFeeds, 'y'));
  });

  it('asks the device, and keeps the matmul where it declines', () => {
    const { g } = dense();
    const grouped = fuseElementwise(g).graph;
    const asked: NodeQuery[] = [];
    const r = fuseMatmulEpilogues(grouped, {
      accepts: (q) => {
        asked.push(q);
        return false;
      },
    });
    expect(r.fused).toBe(0);
    expect(ops(r.graph)).toEqual(['matmul', 'fused']);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({
      op: 'fusedMatmul',
      attrs: { transposeA: false, transposeB: false },
      inputs: [
        { dtype: 'float32', shape: [4, 3] },
        { dtype: 'float32', shape: [3, 5] },
        { dtype: 'float32', shape: [5] },
      ],
      outputs: [{ dtype: 'float32', shape: [4, 5] }],
    });
  });

  it('takes a single op, the product in any slot, and keeps transposes', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3, 4], 'x');
    const w = g.placeholder('float32', [5, 3], 'w');
    const s = g.placeholder('float32', [], 's');
    // The product is the op's second operand: the program reads it as slot 0 all the same.
    g.output('y', mul(s, matmul(x, w, { transposeA: true, transposeB: true })));
    const { graph, fused } = fuseMatmulEpilogues(g, always);
    verifyGraph(graph);
    expect(fused).toBe(1);
    const node = graph.nodes.find((n) => n.op === 'fusedMatmul')!;
    expect(node.attrs).toMatchObject({ transposeA: true, transposeB: true, program: [['mul', [1, 0]]] });
    const feeds = { x: ramp([3, 4]), w: ramp([5, 3], 0.3), s: refTensor('float32', [], [-1.5]) };
    expect(run(graph, feeds, 'y')).toEqual(run(g, feeds, 'y'));
  });

  it('keeps a product that something else reads, that is an output, or that the epilogue broadcasts', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 3], 'x');
    const w = g.placeholder('float32', [3, 5], 'w');
    const big = g.placeholder('float32', [2, 4, 5], 'big');
    const p1 = matmul(x, w);
    g.output('shared', add(relu(p1), sum(p1))); // p1 read twice
    const p2 = matmul(x, w);
    g.output('p2', p2);
    g.output('y2', tanh(p2)); // p2 is an output itself
    g.output('y3', add(matmul(x, w), big)); // the epilogue's result is larger than the product
    const { graph, fused } = fuseMatmulEpilogues(g, always);
    expect(fused).toBe(0);
    expect(graph.nodes.map((n) => n.op)).toEqual(g.nodes.map((n) => n.op));
  });

  it('fuses inside regions', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3, 3], 'x');
    const [r] = whileLoop(
      g,
      [x],
      (a) => greater(sum(mul(a, a)), 1),
      (a) => [tanh(add(matmul(a, a), -0.25))],
    );
    g.output('r', r!);
    const { graph, fused } = fuseMatmulEpilogues(fuseElementwise(g).graph, always);
    verifyGraph(graph);
    expect(fused).toBe(1);
    const body = graph.nodes.find((n) => n.op === 'while')!.attrs.body as GraphData;
    expect(ops(body)).toEqual(['fusedMatmul']);
    const feeds = { x: ramp([3, 3], 0.5, -0.2) };
    expect(run(graph, feeds, 'r')).toEqual(run(g, feeds, 'r'));
  });

  it('runs in the pipeline for a device that claims fusedMatmul, and only there', () => {
    const { g } = dense();
    const claims = (op: string): SupportOracle => ({
      name: 'test',
      supports: (q) =>
        q.op === op || q.op === 'fused' ? { ok: true, seconds: 0 } : { ok: false, reason: 'no' },
    });
    const withEpilogues = optimize(g, passesFor(claims('fusedMatmul')));
    expect(ops(withEpilogues.graph)).toEqual(['fusedMatmul']);
    expect(withEpilogues.report.find((p) => p.pass === 'matmul epilogue fusion')!.detail).toBe('1 product');
    expect(ops(optimize(g, passesFor(claims('none'))).graph)).toEqual(['matmul', 'fused']);
    // Without a device, nothing to ask: the default pipeline has no epilogue fusion.
    expect(ops(optimize(g).graph)).toEqual(['matmul', 'fused']);
  });
});

describe('the fusedMatmul op', () => {
  it('rejects epilogue inputs that do not broadcast to the product, and bad programs', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 3], 'x');
    const w = g.placeholder('float32', [3, 5], 'w');
    expect(() =>
      g.apply('fusedMatmul', [x, w, g.placeholder('float32', [4], 'b')], { program: [['add', [0, 1]]] }),
    ).toThrow(/input 2 \(f32\[4\]\) does not broadcast to the product f32\[4,5\]/);
    expect(() =>
      g.apply('fusedMatmul', [x, w, g.placeholder('float32', [2, 4, 5], 'big')], {
        program: [['add', [0, 1]]],
      }),
    ).toThrow(KilnError);
    expect(() => g.apply('fusedMatmul', [x, w], { program: [['add', [0, 1]]] })).toThrow(
      /not computed before/,
    );
    expect(() => g.apply('fusedMatmul', [x, w], { program: [['softmax', [0]]] })).toThrow(/not a fusible op/);
  });
});
