import { add, exp, Graph, HostTensor } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { EagerContext } from '../src/eager/context.js';
import { Session } from '../src/session.js';
import { AsyncCpuDevice } from './fixtures/async-cpu.js';

const x = () => new HostTensor('float32', [3], new Float32Array([1, 2, 3]));

describe('an asynchronous device that fails', () => {
  it('fails the run that hit it, and the session goes on', async () => {
    const g = new Graph();
    const p = g.placeholder('float32', [3], 'x');
    const bad = exp(p);
    const good = add(p, 1);
    const device = new AsyncCpuDevice('async-cpu:0', 'exp');
    const session = new Session(g, { device });
    await expect(session.run(bad, { x: x() })).rejects.toThrow(/injected compile failure at exp/);
    // The failed compile is not cached: the same fetch fails again by compiling again.
    const before = device.compiles;
    await expect(session.run([good, bad], { x: x() })).rejects.toThrow(/injected compile failure/);
    expect(device.compiles).toBeGreaterThan(before);
    expect(Array.from((await session.run(good, { x: x() })).data)).toEqual([2, 3, 4]);
  });

  it('reports a failed eager op at the next read, to every reader, then runs what comes after', async () => {
    const ctx = new EagerContext(new AsyncCpuDevice('async-cpu:1', 'exp'));
    const a = ctx.constant({ dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) });
    const b = ctx.apply('exp', [a], {})[0]!;
    const c = ctx.apply('add', [a, a], {})[0]!;
    const reads = await Promise.allSettled([c.data(), b.data()]);
    expect(reads.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const d = ctx.apply('add', [a, a], {})[0]!;
    expect(Array.from(await d.data())).toEqual([2, 4, 6]);
  });
});
