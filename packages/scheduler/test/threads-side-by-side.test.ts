import { Graph, HostTensor, matmul, Prng, randomNormal, sum, tanh } from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSession } from '../src/cluster/cluster-session.js';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import type { TraceEntry } from '../src/cluster/worker-pool.js';

/** A few matmuls on one worker: long enough per step that two steps can overlap. */
function onWorker(worker: string) {
  const g = new Graph();
  return g.onDevice(worker, () => {
    const x = g.placeholder('float32', [128, 128], 'x');
    // Variables are the cluster's by name: each session its own.
    const w = g.variable(`w-${worker}`, randomNormal(g, [128, 128], { seed: 1 }));
    let h = x;
    for (let i = 0; i < 6; i++) h = tanh(matmul(h, w));
    return { g, out: sum(h) };
  });
}

const x = () => {
  const rng = new Prng(3);
  return new HostTensor(
    'float32',
    [128, 128],
    Float32Array.from({ length: 128 * 128 }, () => rng.normal()),
  );
};

const overlaps = (a: TraceEntry, b: TraceEntry) => a.start < b.end && b.start < a.end;

describe('executions on disjoint workers', () => {
  let pool: ThreadPool;
  beforeAll(async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: '@kiln/backend-cpu' } });
  });
  afterAll(() => pool?.close());

  it('run side by side, and each gives what it gives alone', async () => {
    const a = onWorker('worker:0');
    const b = onWorker('worker:1');
    const sa = new ClusterSession(a.g, pool);
    const sb = new ClusterSession(b.g, pool);
    const alone = (await sa.run(a.out, { x: x() })).data[0];
    const traceA: TraceEntry[] = [];
    const traceB: TraceEntry[] = [];
    const loop = async (s: ClusterSession, out: typeof a.out, trace: TraceEntry[]) => {
      const values: number[] = [];
      for (let i = 0; i < 20; i++) values.push((await s.run(out, { x: x() }, { trace })).data[0]!);
      return values;
    };
    const [va, vb] = await Promise.all([loop(sa, a.out, traceA), loop(sb, b.out, traceB)]);
    // Both compute the same thing from the same seeds, whichever worker, whatever runs beside.
    expect(new Set([...va, ...vb])).toEqual(new Set([alone]));
    expect(new Set(traceA.map((t) => t.worker))).toEqual(new Set(['worker:0']));
    expect(new Set(traceB.map((t) => t.worker))).toEqual(new Set(['worker:1']));
    // Steps of the two sessions were under way at the same time: they did not wait for each other.
    expect(traceA.some((ta) => traceB.some((tb) => overlaps(ta, tb)))).toBe(true);
  });
});
