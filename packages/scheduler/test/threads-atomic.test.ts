import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import type { TraceEntry } from '../src/cluster/worker-pool.js';
import {
  bits,
  FAULTY,
  rejection,
  tripFeeds,
  tripwireModel,
  variableBits,
} from './fixtures/tripwire-model.js';

/**
 * A step is atomic: its variable updates take effect on every worker once the whole step has
 * succeeded, and a failed or cancelled step changes no variable anywhere. Each test runs a model
 * 'a/' that is interrupted and a model 'b/' that is not, on the same workers, and compares them.
 */
describe('atomic steps on worker threads', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  async function start(fault: 'throw' | 'exit' | 'stall', stallMillis?: number) {
    pool = await ThreadPool.create({
      workers: 2,
      device: {
        module: FAULTY,
        options: { fault, trigger: 'nan', ...(stallMillis === undefined ? {} : { stallMillis }) },
      },
    });
    const a = tripwireModel('a/');
    const b = tripwireModel('b/');
    const sa = new ClusterSession(a.g, pool);
    const sb = new ClusterSession(b.g, pool);
    const step = (s: ClusterSession, m: typeof a, seed: number, trip = 0) =>
      s.run(m.checked, tripFeeds(seed, trip), { targets: m.train });
    // One sound step each first, so every variable has a value that a bad step could change.
    await step(sa, a, 1);
    await step(sb, b, 1);
    return { pool, a, b, sa, sb, step };
  }

  it('a step whose last partition throws changes no variable, and its retry equals an uninterrupted step', async () => {
    const { a, b, sa, sb, step } = await start('throw');
    const before = await sa.variables();

    const e = await rejection(step(sa, a, 2, Number.NaN));
    expect(e.code).toBe('worker');
    expect(e.message).toMatch(
      /worker 'worker:0' failed running partition p\d+\/worker:0#2: .*'boom'.*injected fault/,
    );
    // worker:1 had already run w2's update when worker:0 failed: it must not have taken effect.
    const after = await sa.variables();
    expect(variableBits(after, 'a/')).toEqual(variableBits(before, 'a/'));

    const retried = await step(sa, a, 2);
    const straight = await step(sb, b, 2);
    expect(bits(retried)).toEqual(bits(straight));
    expect(variableBits(await sa.variables(), 'a/')).toEqual(variableBits(await sb.variables(), 'b/'));
  });

  it('a worker that dies in the last partition leaves the other workers’ variables as they were', async () => {
    const { pool, a, b, sa, sb, step } = await start('exit');
    const before = await sa.variables();
    const twin = await sb.variables();

    const e = await rejection(step(sa, a, 2, Number.NaN));
    expect(e.message).toMatch(/worker 'worker:0' died while running partition p\d+\/worker:0#2/);
    await pool.settled();
    // w1 went with worker:0; w2, on worker:1, is exactly as before the step.
    const after = await sa.variables();
    expect([...after.keys()]).toEqual([a.w2]);
    expect(bits(after.get(a.w2)!)).toEqual(bits(before.get(a.w2)!));

    // The twin model's w1 lived on the same worker: it is given back too.
    await sa.setVariables(new Map([[a.w1, before.get(a.w1)!]]));
    await sb.setVariables(new Map([[b.w1, twin.get(b.w1)!]]));
    const retried = await step(sa, a, 2);
    const straight = await step(sb, b, 2);
    expect(bits(retried)).toEqual(bits(straight));
    expect(variableBits(await sa.variables(), 'a/')).toEqual(variableBits(await sb.variables(), 'b/'));
  });

  it('a cancelled runMany changes no variable, though some of its runs had finished', async () => {
    const { a, b, sa, sb } = await start('stall', 2000);
    const before = await sa.variables();
    const partitions = (await sa.plan(a.checked, tripFeeds(2), a.train)).partitions.length;

    // Three runs; the third stalls in its last partition. Once the first two have run every
    // partition (their updates made), the caller cancels.
    const controller = new AbortController();
    const trace: TraceEntry[] = [];
    const feeds = [tripFeeds(2), tripFeeds(3), tripFeeds(4, Number.NaN)];
    const pending = rejection(
      sa.runMany(a.checked, feeds, { targets: a.train, signal: controller.signal, trace }),
    );
    const finished = () => {
      const runs = [...new Set(trace.map((t) => t.run))].sort((x, y) => x - y).slice(0, 2);
      return runs.length === 2 && runs.every((r) => trace.filter((t) => t.run === r).length === partitions);
    };
    while (!finished()) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    expect((await pending).code).toBe('cancelled');
    expect(variableBits(await sa.variables(), 'a/')).toEqual(variableBits(before, 'a/'));

    // Run again in full, it gives what the same runs give on a model never interrupted.
    const sound = [tripFeeds(2), tripFeeds(3), tripFeeds(4)];
    const retried = await sa.runMany(a.checked, sound, { targets: a.train });
    const straight = await sb.runMany(b.checked, sound, { targets: b.train });
    expect(retried.map(bits)).toEqual(straight.map(bits));
    expect(variableBits(await sa.variables(), 'a/')).toEqual(variableBits(await sb.variables(), 'b/'));
  });
});
