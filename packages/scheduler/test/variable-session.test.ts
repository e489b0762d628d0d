import { CpuDevice } from '@kiln/backend-cpu';
import { add, Graph, HostTensor, KilnError, matmul, randomNormal, SGD, sum } from '@kiln/ir';
import { ClusterSession, Session, ThreadPool, type VariableSession } from '@kiln/scheduler';
import { afterEach, describe, expect, it } from 'vitest';

function model() {
  const g = new Graph();
  const x = g.placeholder('float32', [2, 3], 'x');
  const w = g.variable('w', randomNormal(g, [3, 1], { seed: 5 }));
  const loss = sum(add(matmul(x, w), 1));
  return { g, loss, train: new SGD({ learningRate: 0.1 }).minimize(loss) };
}

const X = HostTensor.from([
  [1, 2, 3],
  [4, 5, 6],
]);

/** The same code on either session: read, set, a refused set that changes nothing, close. */
async function exercise(session: VariableSession & { run: Session['run'] }, m: ReturnType<typeof model>) {
  await session.run(m.loss, { x: X }, { targets: m.train });
  const before = await session.readVariable('w');
  expect((await session.variables()).get('w')!.data).toEqual(before.data);
  const ones = HostTensor.from([[1], [1], [1]]);
  await session.setVariables(new Map([['w', ones]]));
  expect(Array.from((await session.readVariable('w')).data)).toEqual([1, 1, 1]);
  await expect(session.setVariables(new Map([['w', HostTensor.from([1, 2])]]))).rejects.toThrow(
    /setVariables: variable 'w' is float32\[3,1\].*float32\[2\]/,
  );
  expect(Array.from((await session.readVariable('w')).data)).toEqual([1, 1, 1]);
  await expect(session.readVariable('nope')).rejects.toThrow(KilnError);
  await session.close();
  await expect(session.run(m.loss, { x: X })).rejects.toThrow(/the session is closed/);
}

describe('Session and ClusterSession share one interface for variables and closing', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('on one device', async () => {
    const m = model();
    await exercise(new Session(m.g, { device: new CpuDevice() }), m);
  });

  it('on worker threads', async () => {
    pool = await ThreadPool.create({ workers: 1, device: { module: '@kiln/backend-cpu' } });
    const m = model();
    await exercise(new ClusterSession(m.g, pool), m);
  });
});
