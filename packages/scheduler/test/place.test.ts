import {
  add,
  exp,
  Graph,
  KilnError,
  matmul,
  mul,
  type NodeId,
  relu,
  type SymbolicTensor,
  tensor,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { place } from '../src/plan/place.js';
import { NullDevice } from '../src/testing/null-device.js';

const slow = (name: string) => new NullDevice({ name, info: { flopsPerSecond: 1e9, bytesPerSecond: 1e9 } });
const fast = (name: string) => new NullDevice({ name, info: { flopsPerSecond: 1e12, bytesPerSecond: 1e12 } });

const id = (t: SymbolicTensor): NodeId => t.node.id;

function error(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a KilnError');
}

describe('place', () => {
  it('keeps a chain on a single device', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 16], 'x');
    const w = g.placeholder('float32', [16, 16], 'w');
    relu(add(matmul(x, w), x));
    const p = place(g, [slow('cpu:0')]);
    expect(new Set(p.device.values())).toEqual(new Set(['cpu:0']));
    expect(p.device.size).toBe(g.nodes.length);
    expect(p.reasons.size).toBe(g.nodes.length);
    expect(p.warnings).toEqual([]);
  });

  it('puts heavy compute on the much faster device', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [256, 256], 'a');
    const b = g.placeholder('float32', [256, 256], 'b');
    const y = matmul(a, b, { name: 'mm' });
    const p = place(g, [slow('cpu:0'), fast('gpu:0')], { bytesPerSecondBetweenDevices: 1e12 });
    expect(p.device.get(id(y))).toBe('gpu:0');
    expect(p.reasons.get(id(y))).toMatch(/^earliest finish: gpu:0 .* vs cpu:0 /);
  });

  it('keeps a cheap op with its inputs when transfers are expensive, and moves it when they are free', () => {
    const build = () => {
      const g = new Graph();
      const x = g.placeholder('float32', [512, 512], 'x');
      const h = relu(x, 'h');
      const y = exp(h, 'y');
      return { g, h, y };
    };
    const { g, h, y } = build();
    const hints = new Map([[id(h), 'cpu:0']]);
    const slowLink = place(g, [slow('cpu:0'), fast('gpu:0')], { hints, bytesPerSecondBetweenDevices: 1e6 });
    expect(slowLink.device.get(id(h))).toBe('cpu:0');
    expect(slowLink.device.get(id(y))).toBe('cpu:0');
    const freeLink = place(g, [slow('cpu:0'), fast('gpu:0')], { hints, bytesPerSecondBetweenDevices: 1e15 });
    expect(freeLink.device.get(id(y))).toBe('gpu:0');
  });

  it('honours hints, even against the cost model', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [128, 128], 'a');
    const y = matmul(a, a, { name: 'mm' });
    const z = relu(y, 'r');
    const p = place(g, [slow('cpu:0'), fast('gpu:0')], { hints: new Map([[id(y), 'cpu:0']]) });
    expect(p.device.get(id(y))).toBe('cpu:0');
    expect(p.reasons.get(id(y))).toBe('hint cpu:0');
    expect(p.device.get(id(a))).toBe('cpu:0'); // a placeholder goes with its first consumer
    expect(p.device.get(id(z))).toBeDefined();
    expect(p.warnings).toEqual([]);
  });

  it('falls back with a warning listing the nodes a hinted device declines', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [8, 8], 'a');
    const m1 = matmul(a, a, { name: 'm1' });
    const r = relu(m1, 'r');
    const m2 = matmul(r, r, { name: 'm2' });
    const devices = [slow('cpu:0'), new NullDevice({ name: 'gpu:0', unsupported: ['matmul'] })];
    const hints = new Map([
      [id(m1), 'gpu:0'],
      [id(r), 'gpu:0'],
      [id(m2), 'gpu:0'],
    ]);
    const p = place(g, devices, { hints });
    expect(p.device.get(id(m1))).toBe('cpu:0');
    expect(p.device.get(id(m2))).toBe('cpu:0');
    expect(p.device.get(id(r))).toBe('gpu:0');
    expect(p.warnings).toEqual([
      `nodes #${id(m1)} (matmul 'm1'), #${id(m2)} (matmul 'm2') requested gpu:0, which cannot run them; placed on cpu:0`,
    ]);
    expect(p.reasons.get(id(m1))).toMatch(/^hint gpu:0 cannot run it; earliest finish: cpu:0/);
  });

  it('warns about a hint naming a device outside the cluster', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [8], 'a');
    const r = relu(a, 'r');
    const p = place(g, [slow('cpu:0')], { hints: new Map([[id(r), 'tpu:3']]) });
    expect(p.device.get(id(r))).toBe('cpu:0');
    expect(p.warnings).toEqual([
      `node #${id(r)} (relu 'r') requested tpu:3, which is not in the cluster; placed on cpu:0`,
    ]);
  });

  it('colocates a variable with its readers and assigns', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 4], 'x');
    const v = g.variable('v', tensor(g, new Array(16).fill(1), [4, 4]));
    const read = matmul(x, v, { name: 'read' });
    const upd = g.assign(v, add(v, read, 'sum'), 'update');
    const devices = [slow('cpu:0'), fast('gpu:0')];
    const p = place(g, devices, { hints: new Map([[id(read), 'cpu:0']]) });
    for (const n of [v, read, upd]) expect(p.device.get(id(n))).toBe('cpu:0');
    expect(p.reasons.get(id(upd))).toBe(`colocated with variable 'v' (#${id(v)}): hint cpu:0`);
  });

  it('rejects conflicting hints inside a colocation group, naming both nodes and devices', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 4], 'x');
    const v = g.variable('v', tensor(g, new Array(16).fill(1), [4, 4]));
    const read = matmul(x, v, { name: 'read' });
    const upd = g.assign(v, mul(read, 2), 'update');
    const hints = new Map([
      [id(read), 'cpu:0'],
      [id(upd), 'gpu:0'],
    ]);
    const e = error(() => place(g, [slow('cpu:0'), fast('gpu:0')], { hints }));
    expect(e.code).toBe('invalid-argument');
    expect(e.message).toContain(`#${id(read)} (matmul 'read') requests cpu:0`);
    expect(e.message).toContain(`#${id(upd)} (assign 'update') requests gpu:0`);
  });

  it('keeps the message short when a conflicting group is large', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4, 4], 'x');
    const v = g.variable('v', tensor(g, new Array(16).fill(1), [4, 4]));
    const hints = new Map<number, string>();
    for (let i = 0; i < 40; i++) hints.set(id(matmul(x, v)), i < 20 ? 'cpu:0' : 'gpu:0');
    const e = error(() => place(g, [slow('cpu:0'), fast('gpu:0')], { hints }));
    expect(e.message).toMatch(/\(group: (#\d+ \([^)]*\), ){7}#\d+ \([^)]*\) and 34 more\)$/);
  });

  it('rejects a colocation group no single device can run', () => {
    const g = new Graph();
    const v = g.variable('v', tensor(g, new Array(4).fill(1), [2, 2]));
    const m = matmul(v, v, { name: 'm' });
    const r = exp(v, 'r');
    const devices = [
      new NullDevice({ name: 'a:0', unsupported: ['matmul'] }),
      new NullDevice({ name: 'b:0', unsupported: ['exp'] }),
    ];
    const e = error(() => place(g, devices));
    expect(e.code).toBe('unsupported');
    expect(e.message).toContain(`a:0 cannot run #${id(m)} (matmul 'm')`);
    expect(e.message).toContain(`b:0 cannot run #${id(r)} (exp 'r')`);
  });

  it('places a composite on a device that declines it but runs its expansion, at the expansion cost', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [64, 64], 'a');
    const r = relu(a, 'r');
    const declines = new NullDevice({ name: 'a:0', unsupported: ['relu'] });
    const placement = place(g, [declines]);
    expect(placement.device.get(r.node.id)).toBe('a:0');
    // Where the expansion needs a primitive the device lacks too, the node cannot go there.
    const e = error(() => place(g, [new NullDevice({ name: 'b:0', unsupported: ['relu', 'maximum'] })]));
    expect(e.message).toMatch(/b:0 cannot run maximum\(f32\[64,64\], f32\[\]\)/);
  });

  it('names a node that no device can run', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [2, 2], 'a');
    const m = matmul(a, a, { name: 'm' });
    const e = error(() => place(g, [new NullDevice({ name: 'a:0', unsupported: ['matmul'] })]));
    expect(e.code).toBe('unsupported');
    expect(e.message).toContain(`no device can run #${id(m)} (matmul 'm')`);
  });

  it('does not depend on the order the cluster lists its devices', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [64, 64], 'a');
    relu(matmul(a, a));
    const one = place(g, [slow('cpu:0'), slow('cpu:1'), fast('gpu:0')]);
    const two = place(g, [fast('gpu:0'), slow('cpu:1'), slow('cpu:0')]);
    expect(two).toEqual(one);
  });
});
