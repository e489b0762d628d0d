import { add, Graph, HostTensor, KilnError, matmul, Prng, randomNormal, relu, SGD, sum } from '@kiln/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { formatStory } from '../src/cluster/story.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';

const FAULTY = new URL('./fixtures/faulty-plugin.ts', import.meta.url).href;

/**
 * Two layers, the second on worker:1; its matmul is named 'boom' when `faulty`, which the faulty
 * device fails on (a partition holding it throws, exits its thread or stalls, as configured).
 */
function model(faulty: boolean) {
  const g = new Graph();
  const x = g.placeholder('float32', [4, 8], 'x');
  const w1 = g.variable('w1', randomNormal(g, [8, 8], { seed: 1 }));
  const h = relu(matmul(x, w1));
  const loss = g.onDevice('worker:1', () => {
    const w2 = g.variable('w2', randomNormal(g, [8, 2], { seed: 2 }));
    const [y] = g.apply('matmul', [h, w2], {}, faulty ? 'boom' : 'dense2');
    return sum(add(y!, 1));
  });
  return { g, loss, train: new SGD({ learningRate: 0.01 }).minimize(loss) };
}

const x = () => {
  const rng = new Prng(1);
  return new HostTensor(
    'float32',
    [4, 8],
    Float32Array.from({ length: 32 }, () => rng.normal()),
  );
};

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a rejection');
}

describe('worker failures', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('a kernel that throws fails the step naming the worker and the node; the pool goes on', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: FAULTY, options: { fault: 'throw' } } });
    const bad = model(true);
    const e = await rejection(new ClusterSession(bad.g, pool).run(bad.loss, { x: x() }));
    expect(e.code).toBe('worker');
    expect(e.message).toMatch(
      /worker 'worker:1' failed running partition .*node #\d+ \(matmul 'boom'\): injected fault/,
    );
    // The same workers run a sound graph next.
    const good = model(false);
    const session = new ClusterSession(good.g, pool);
    const loss = await session.run(good.loss, { x: x() }, { targets: good.train });
    expect(Number.isFinite(loss.data[0])).toBe(true);
  });

  it('a worker that dies fails the step, is replaced, and its variables are reported lost', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: FAULTY, options: { fault: 'exit' } } });
    const good = model(false);
    const session = new ClusterSession(good.g, pool);
    await session.run(good.loss, { x: x() }, { targets: good.train });
    const before = await session.variables();

    const bad = model(true);
    const e = await rejection(new ClusterSession(bad.g, pool).run(bad.loss, { x: x() }));
    expect(e.code).toBe('worker');
    expect(e.message).toMatch(
      /worker 'worker:1' died while running partition p\d+\/worker:1#\d+: exited with code 3/,
    );
    // The error carries the coordinator's story of the run: what it sent where, and the death.
    expect(e.message).toMatch(/the coordinator's story of it:\n(.*\n)*.*\[execute-\d+\] execute runs \d+/);
    expect(e.message).toMatch(/\[exited-\d+\] worker:1 exited: exited with code 3 -> run \d+ failed/);
    await pool.settled();
    // The cluster's story of worker:1, from its first start to its replacement: why its
    // partitions went there (w2 was hinted onto it), what it lost, and that it came back.
    const story = formatStory(await pool.story('worker:1'));
    expect(story).toMatch(/worker:1 joined \(generation 1\)/);
    expect(story).toMatch(/variable 'w2' lives on worker:1 \(.*hint worker:1/);
    expect(story).toMatch(/lost with it: partitions [^;]*; variables 'w2'/);
    expect(story).toMatch(/worker:1 joined \(generation 2\)/);
    expect(pool.generation('worker:1')).toBe(2);
    // Read now, the variables are those that survived: w2 is missing, not an error.
    expect([...(await session.variables()).keys()]).toEqual(['w1']);

    // The first session's w2 lived on worker:1: it is lost, never silently re-initialized.
    const lost = await rejection(session.run(good.loss, { x: x() }, { targets: good.train }));
    expect(lost.message).toMatch(/variables 'w2' were lost when 'worker:1' died; give them values again/);
    await session.setVariables(new Map([['w2', before.get('w2')!]]));
    const after = await session.run(good.loss, { x: x() }, { targets: good.train });
    expect(Number.isFinite(after.data[0])).toBe(true);
  });

  it('a stalled run is cancelled by its caller, or failed by a timeout that replaces the worker; the pool stays usable', async () => {
    pool = await ThreadPool.create({
      workers: 2,
      device: { module: FAULTY, options: { fault: 'stall', stallMillis: 3000 } },
    });
    const bad = model(true);
    const slow = new ClusterSession(bad.g, pool);
    const controller = new AbortController();
    const cancelled = rejection(slow.run(bad.loss, { x: x() }, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    expect((await cancelled).code).toBe('cancelled');
    // A cancel ends the run, not the worker: its stalled partition finishes there, dropped.
    expect(pool.generation('worker:1')).toBe(1);

    const timedOut = await rejection(slow.run(bad.loss, { x: x() }, { timeoutMillis: 1000 }));
    expect(timedOut.code).toBe('timeout');
    expect(timedOut.message).toMatch(
      /within 1000 ms: worker 'worker:1' was still running partition p\d+\/worker:1#1/,
    );
    // A timeout takes the worker it waited for as hung: a fresh thread takes its name.
    await pool.settled();
    expect(pool.generation('worker:1')).toBe(2);

    const good = model(false);
    const loss = await new ClusterSession(good.g, pool).run(good.loss, { x: x() });
    expect(Number.isFinite(loss.data[0])).toBe(true);
  });

  it('a device module that cannot load fails the pool start naming the worker', async () => {
    const e = await rejection(ThreadPool.create({ workers: 1, device: { module: '@kiln/no-such-backend' } }));
    expect(e.code).toBe('worker');
    expect(e.message).toMatch(
      /worker 'worker:0' failed to start: cannot import device plugin package '@kiln\/no-such-backend'/,
    );
  });

  it('a worker killed while idle is replaced before the next run', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: FAULTY } });
    await pool.kill('worker:0');
    const good = model(false);
    const loss = await new ClusterSession(good.g, pool).run(good.loss, { x: x() });
    expect(Number.isFinite(loss.data[0])).toBe(true);
    expect(pool.generation('worker:0')).toBe(2);
  });
});
