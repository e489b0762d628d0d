import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import {
  bits,
  FAULTY,
  rejection,
  tripFeeds,
  tripwireModel,
  variableBits,
} from './fixtures/tripwire-model.js';

/**
 * A worker whose kernel never returns (the faulty device blocks its thread for good when fed a NaN)
 * fails the run at its timeout, naming the worker and the partition it was stuck in; the worker is
 * replaced rather than left to fail every later step, and the step after that succeeds.
 */
describe('a hung worker', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('fails the run at its timeout naming the worker and partition, and is replaced', async () => {
    pool = await ThreadPool.create({
      workers: 2,
      device: { module: FAULTY, options: { fault: 'hang', trigger: 'nan' } },
    });
    const a = tripwireModel('a/');
    const b = tripwireModel('b/');
    const sa = new ClusterSession(a.g, pool);
    const sb = new ClusterSession(b.g, pool);
    await sa.run(a.checked, tripFeeds(1), { targets: a.train });
    await sb.run(b.checked, tripFeeds(1), { targets: b.train });
    const before = await sa.variables();
    const twin = await sb.variables();

    const TIMEOUT = 1000;
    const started = performance.now();
    const e = await rejection(
      sa.run(a.checked, tripFeeds(2, Number.NaN), { targets: a.train, timeoutMillis: TIMEOUT }),
    );
    const waited = performance.now() - started;
    expect(e.code).toBe('timeout');
    expect(e.message).toMatch(
      /did not finish within 1000 ms: worker 'worker:0' was still running partition p\d+\/worker:0#2/,
    );
    expect(e.message).toMatch(/replaced/);
    // It waited out the timeout, not the hang (a hang never ends).
    expect(waited).toBeGreaterThanOrEqual(TIMEOUT - 50);

    await pool.settled();
    expect(pool.generation('worker:0')).toBe(2);
    expect(pool.generation('worker:1')).toBe(1);
    // The step changed nothing: worker:1's w2 is as it was; worker:0's w1 went with its thread.
    const after = await sa.variables();
    expect([...after.keys()]).toEqual([a.w2]);
    expect(bits(after.get(a.w2)!)).toEqual(bits(before.get(a.w2)!));

    // Given its variable back, the replacement runs the next step as if nothing had happened.
    // The twin model's w1 lived on the same worker: it is given back too.
    await sa.setVariables(new Map([[a.w1, before.get(a.w1)!]]));
    await sb.setVariables(new Map([[b.w1, twin.get(b.w1)!]]));
    const retried = await sa.run(a.checked, tripFeeds(2), { targets: a.train });
    const straight = await sb.run(b.checked, tripFeeds(2), { targets: b.train });
    expect(bits(retried)).toEqual(bits(straight));
    expect(variableBits(await sa.variables(), 'a/')).toEqual(variableBits(await sb.variables(), 'b/'));
  });
});
