import { HostTensor } from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import { bits, rejection, tripFeeds, tripwireModel, variableBits } from './fixtures/tripwire-model.js';

/**
 * setVariables checks every value against the type of the graph's variable before sending any,
 * so a wrong value is refused naming the variable and both types, and never sticks: not on the
 * worker it was meant for, and not on another worker that a sound value in the same call was for.
 */
describe('ClusterSession.setVariables', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
  });
  afterAll(async () => {
    await pool?.close();
  });

  const filled = (shape: number[], value: number) =>
    new HostTensor('float32', shape, new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(value));

  it('refuses a wrong shape or dtype, naming the variable and both types, and changes nothing', async () => {
    const m = tripwireModel('s/');
    const session = new ClusterSession(m.g, pool);
    await session.run(m.checked, tripFeeds(1), { targets: m.train });
    const before = await session.variables();

    // w1 (worker:0) gets a sound value, w2 (worker:1) a wrong shape: neither is set.
    const shape = await rejection(
      session.setVariables(
        new Map([
          [m.w1, filled([8, 8], 0.5)],
          [m.w2, filled([3], 1)],
        ]),
      ),
    );
    expect(shape.code).toBe('invalid-argument');
    expect(shape.message).toMatch(/variable 's\/w2' is float32\[8,2\] in the graph, got float32\[3\]/);
    const dtype = await rejection(
      session.setVariables(new Map([[m.w2, new HostTensor('int32', [8, 2], new Int32Array(16))]])),
    );
    expect(dtype.message).toMatch(/variable 's\/w2' is float32\[8,2\] in the graph, got int32\[8,2\]/);
    const unknown = await rejection(session.setVariables(new Map([['s/w3', filled([1], 0)]])));
    expect(unknown.message).toMatch(/the graph has no variable 's\/w3'/);
    expect(variableBits(await session.variables(), 's/')).toEqual(variableBits(before, 's/'));

    // A later run still sees the old values: it gives what a session never sent bad values does.
    const twin = tripwireModel('t/');
    const reference = new ClusterSession(twin.g, pool);
    await reference.run(twin.checked, tripFeeds(1), { targets: twin.train });
    const got = await session.run(m.checked, tripFeeds(2), { targets: m.train });
    const expected = await reference.run(twin.checked, tripFeeds(2), { targets: twin.train });
    expect(bits(got)).toEqual(bits(expected));
  });

  it('refuses a wrong shape for a variable lost with its worker, which then has no value to compare', async () => {
    const m = tripwireModel('l/');
    const session = new ClusterSession(m.g, pool);
    await session.run(m.checked, tripFeeds(1), { targets: m.train });
    const before = await session.variables();
    await pool.kill('worker:1');
    await pool.settled();

    const e = await rejection(session.setVariables(new Map([[m.w2, filled([2, 8], 0)]])));
    expect(e.code).toBe('invalid-argument');
    expect(e.message).toMatch(/variable 'l\/w2' is float32\[8,2\] in the graph, got float32\[2,8\]/);
    // Still lost, so the next run says so instead of running on a value of the wrong shape.
    const lost = await rejection(session.run(m.checked, tripFeeds(2), { targets: m.train }));
    expect(lost.message).toMatch(/variables 'l\/w2' were lost when 'worker:1' died/);
    await session.setVariables(new Map([[m.w2, before.get(m.w2)!]]));
    const loss = await session.run(m.checked, tripFeeds(2), { targets: m.train });
    expect(Number.isFinite(loss.data[0])).toBe(true);
  });
});
