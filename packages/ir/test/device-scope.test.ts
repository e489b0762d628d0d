import {
  add,
  deserializeGraph,
  eliminateCommonSubexpressions,
  exp,
  fuseElementwise,
  Graph,
  gradients,
  KilnError,
  matmul,
  mul,
  optimize,
  printGraph,
  relu,
  serializeGraph,
  sum,
  tanh,
} from '@kiln/ir';
import { encode } from 'msgpackr';
import { describe, expect, it } from 'vitest';

const deviceOf = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).map((n) => n.device);

describe('device scopes', () => {
  it('tag the nodes built inside them; the innermost scope wins and scopes unwind on throw', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 2], 'x');
    const y = g.onDevice('worker:0/cpu', () => {
      const a = relu(x);
      return g.onDevice('worker:1/cpu', () => exp(a));
    });
    expect(() => g.onDevice('worker:2/cpu', () => tanh(y).item())).toThrow();
    const z = tanh(y);
    expect(deviceOf(g, 'relu')).toEqual(['worker:0/cpu']);
    expect(deviceOf(g, 'exp')).toEqual(['worker:1/cpu']);
    // The tanh built after the throwing scope is outside every scope.
    expect(z.node.device).toBeUndefined();
    expect(g.currentDevice).toBeUndefined();
    expect(() => g.onDevice('', () => 0)).toThrow(/non-empty name/);
    expect(printGraph(g)).toContain('# relu @worker:0/cpu');
  });

  it('survive serialization; graphs without them keep five-element nodes', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    g.output(
      'y',
      g.onDevice('gpu:0', () => exp(x)),
    );
    const back = deserializeGraph(serializeGraph(g));
    expect(back.nodes.map((n) => n.device)).toEqual([undefined, 'gpu:0']);

    const plain = new Graph();
    plain.output('y', exp(plain.placeholder('float32', [3], 'x')));
    const bytes = serializeGraph(plain);
    expect(deserializeGraph(bytes).nodes.every((n) => n.device === undefined)).toBe(true);
    // Without devices the payload is byte-identical to what the five-element layout wrote.
    expect(serializeGraph(deserializeGraph(bytes))).toEqual(bytes);
  });

  it('reject a malformed device field with an error naming the node', async () => {
    const g = new Graph();
    g.output(
      'y',
      g.onDevice('gpu:0', () => exp(g.placeholder('float32', [3], 'x'))),
    );
    const bytes = serializeGraph(g);
    // Rewrite the payload with the device replaced by a number, keeping a valid frame.
    const { decode } = await import('msgpackr');
    const { writeFrame, readFrame } = await import('../src/serialize/frame.js');
    const payload = decode(readFrame(bytes)) as unknown[][];
    const nodes = payload[0] as unknown[][];
    nodes[1]![5] = 42;
    expect(() => deserializeGraph(writeFrame(encode(payload)))).toThrow(KilnError);
    expect(() => deserializeGraph(writeFrame(encode(payload)))).toThrow(/node #1 device.*non-empty string/);
  });

  it('keep CSE and fusion from merging nodes across devices', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const a = g.onDevice('d0', () => exp(x));
    const b = g.onDevice('d1', () => exp(x));
    const c = g.onDevice('d1', () => exp(x));
    g.output('y', add(add(a, b), c));
    const cse = eliminateCommonSubexpressions(g).graph;
    // The two d1 twins merge; the d0 one stays its own.
    expect(cse.nodes.filter((n) => n.op === 'exp').map((n) => n.device)).toEqual(['d0', 'd1']);

    const f = new Graph();
    const p = f.placeholder('float32', [4], 'p');
    const q = f.onDevice('d0', () => tanh(mul(p, 2)));
    f.output(
      'y',
      f.onDevice('d1', () => relu(exp(q))),
    );
    const fused = fuseElementwise(f).graph;
    const groups = fused.nodes.filter((n) => n.op === 'fused');
    expect(groups.map((n) => n.device)).toEqual(['d0', 'd1']);
    // optimize() keeps the scopes end to end.
    expect(
      optimize(f)
        .graph.nodes.filter((n) => n.op === 'fused')
        .map((n) => n.device),
    ).toEqual(['d0', 'd1']);
  });

  it('put each gradient where its forward node runs', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 3], 'x');
    const w = g.variable('w', g.constant({ dtype: 'float32', shape: [3, 2], data: new Float32Array(6) }));
    const h = g.onDevice('worker:0', () => relu(matmul(x, w)));
    const loss = g.onDevice('worker:1', () => sum(mul(h, h)));
    const start = g.nodes.length;
    const [dw] = gradients([loss], [w]);
    expect(dw).not.toBeNull();
    const added = g.nodes.slice(start);
    // The matmul's gradient (matmuls) runs on worker:0, the square's on worker:1.
    const matmuls = added.filter((n) => n.op === 'matmul');
    expect(matmuls.length).toBeGreaterThan(0);
    expect(matmuls.every((n) => n.device === 'worker:0')).toBe(true);
    expect(added.some((n) => n.device === 'worker:1')).toBe(true);
    expect(g.currentDevice).toBeUndefined();
  });
});
