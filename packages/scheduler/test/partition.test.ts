import { add, exp, Graph, matmul, mul, type NodeId, relu, type SymbolicTensor, tensor } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { formatPlacement, partition } from '../src/plan/partition.js';
import { place } from '../src/plan/place.js';
import { NullDevice } from '../src/testing/null-device.js';

const id = (t: SymbolicTensor): NodeId => t.node.id;
const cluster = () => [
  new NullDevice({ name: 'cpu:0', info: { flopsPerSecond: 1e9, bytesPerSecond: 1e9 } }),
  new NullDevice({ name: 'cpu:1', info: { flopsPerSecond: 2e9, bytesPerSecond: 2e9 } }),
  new NullDevice({
    name: 'gpu:0',
    info: { flopsPerSecond: 5e10, bytesPerSecond: 1e11 },
    unsupported: ['exp'],
  }),
];

/** A seeded random DAG of [16,16] tensors: matmuls, elementwise ops, variables and their updates. */
function randomGraph(size: number, seed: number): Graph {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const g = new Graph();
  const pool: SymbolicTensor[] = [];
  for (let i = 0; i < 4; i++) pool.push(g.placeholder('float32', [null, 16], `x${i}`));
  const vars: SymbolicTensor[] = [];
  for (let i = 0; i < 4; i++) {
    const v = g.variable(`w${i}`, tensor(g, new Array(256).fill(0.01), [16, 16]));
    vars.push(v);
  }
  const pick = () => pool[Math.floor(next() * pool.length)]!;
  while (g.nodes.length < size) {
    const r = next();
    if (r < 0.25) pool.push(matmul(pick(), vars[Math.floor(next() * vars.length)]!));
    else if (r < 0.45) pool.push(matmul(pick(), pick(), { transposeB: true }));
    else if (r < 0.65) pool.push(add(pick(), pick()));
    else if (r < 0.8) pool.push(relu(pick()));
    else if (r < 0.9) pool.push(exp(pick()));
    else if (r < 0.97) pool.push(mul(pick(), pick()));
    else {
      const v = vars[Math.floor(next() * vars.length)]!;
      g.assign(v, add(v, 1));
    }
  }
  return g;
}

describe('partition', () => {
  it('has no transfers when everything is on one device', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 4], 'x');
    relu(add(matmul(x, x), x));
    const placement = place(g, [cluster()[0]!]);
    const parts = partition(g, placement);
    expect(parts.transfers).toBe(0);
    expect([...parts.partitions.keys()]).toEqual(['cpu:0']);
    expect(parts.partitions.get('cpu:0')).toEqual({ nodes: g.nodes.map((n) => n.id), sends: [], recvs: [] });
  });

  it('sends a value once per destination however many consumers it has there', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [32, 32], 'x');
    const h = relu(x, 'h');
    const c1 = exp(h, 'c1');
    const c2 = mul(h, h, 'c2');
    const c3 = add(h, h, 'c3');
    const c4 = relu(h, 'c4');
    const hints = new Map<NodeId, string>([
      [id(h), 'cpu:0'],
      [id(c1), 'cpu:1'],
      [id(c2), 'cpu:1'],
      [id(c3), 'cpu:1'],
      [id(c4), 'gpu:0'],
    ]);
    const placement = place(g, cluster(), { hints });
    expect(placement.warnings).toEqual([]);
    const parts = partition(g, placement);
    expect(parts.transfers).toBe(2);
    const v = h.id;
    expect(parts.partitions.get('cpu:0')!.sends).toEqual([
      { value: v, to: 'cpu:1', key: `${v}:cpu:0->cpu:1` },
      { value: v, to: 'gpu:0', key: `${v}:cpu:0->gpu:0` },
    ]);
    expect(parts.partitions.get('cpu:1')!.recvs).toEqual([
      { value: v, from: 'cpu:0', key: `${v}:cpu:0->cpu:1` },
    ]);
    expect(parts.partitions.get('gpu:0')!.recvs).toEqual([
      { value: v, from: 'cpu:0', key: `${v}:cpu:0->gpu:0` },
    ]);
    expect(parts.partitions.get('cpu:1')!.nodes).toEqual([id(c1), id(c2), id(c3)]);

    const text = formatPlacement(g, placement, parts);
    expect(text).toContain(`#${id(c2)} mul 'c2' -> cpu:1 (hint cpu:1)`);
    expect(text).toContain('transfers: 2');
    expect(text).toContain(`v${v} f32[32,32] from #${id(h)} (relu 'h'): cpu:0 -> gpu:0`);
  });

  it('matches every cut edge with a send and a recv', () => {
    const g = randomGraph(300, 7);
    const placement = place(g, cluster(), { bytesPerSecondBetweenDevices: 1e10 });
    const parts = partition(g, placement);
    const needed = new Set<string>();
    for (const n of g.nodes) {
      for (const v of n.inputs) {
        const from = placement.device.get(g.values[v]!.node)!;
        const to = placement.device.get(n.id)!;
        if (from !== to) needed.add(`${v}:${from}->${to}`);
      }
    }
    const sends = [...parts.partitions.values()].flatMap((p) => p.sends.map((s) => s.key));
    const recvs = [...parts.partitions.values()].flatMap((p) => p.recvs.map((r) => r.key));
    expect(new Set(sends)).toEqual(needed);
    expect(new Set(recvs)).toEqual(needed);
    expect(sends.length).toBe(needed.size);
    expect(parts.transfers).toBe(needed.size);
    const all = [...parts.partitions.values()].flatMap((p) => p.nodes).sort((a, b) => a - b);
    expect(all).toEqual(g.nodes.map((n) => n.id));
    expect(placement.warnings).toEqual([]);
  });

  it('is deterministic: the same graph and cluster give the same plan', () => {
    const first = randomGraph(500, 42);
    const second = randomGraph(500, 42);
    const a = place(first, cluster());
    const b = place(second, [...cluster()].reverse());
    expect(b).toEqual(a);
    expect([...b.device.entries()]).toEqual([...a.device.entries()]);
    const pa = partition(first, a);
    const pb = partition(second, b);
    expect(pb).toEqual(pa);
    expect([...pb.partitions.keys()]).toEqual([...pa.partitions.keys()]);
    expect(formatPlacement(second, b, pb)).toBe(formatPlacement(first, a, pa));
  });

  it('places and partitions a 2000-node graph on null devices', { timeout: 5000 }, () => {
    const g = randomGraph(2000, 1);
    const placement = place(g, cluster());
    expect(placement.device.size).toBe(g.nodes.length);
    const parts = partition(g, placement);
    // Variables stay with everything that reads or assigns them.
    for (const n of g.nodes) {
      if (n.op !== 'assign') continue;
      const v = g.nodes.find((m) => m.op === 'variable' && m.attrs.name === n.attrs.variable)!;
      expect(placement.device.get(n.id)).toBe(placement.device.get(v.id));
    }
    // gpu:0 declines exp: none may land there.
    for (const n of g.nodes) if (n.op === 'exp') expect(placement.device.get(n.id)).not.toBe('gpu:0');
    expect(parts.transfers).toBeGreaterThanOrEqual(0);
  });
});
