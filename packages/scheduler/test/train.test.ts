import { CpuDevice } from '@kiln/backend-cpu';
import {
  Adam,
  decodeCheckpoint,
  encodeCheckpoint,
  Graph,
  glorotUniform,
  HostTensor,
  KilnError,
  matmul,
  mean,
  mul,
  Prng,
  SGD,
  sub,
} from '@kiln/ir';
import { Session } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

/** A linear regression problem with a known answer. */
function problem(seed: number) {
  const rng = new Prng(seed);
  const xs = Array.from({ length: 32 }, () => Array.from({ length: 4 }, () => rng.normal()));
  const trueW = [1.5, -2, 0.5, 3];
  const ys = xs.map((row) => [row.reduce((a, v, i) => a + v * trueW[i]!, 0)]);
  return { x: HostTensor.from(xs), y: HostTensor.from(ys), trueW };
}

function model(optimizer: 'sgd' | 'adam') {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', glorotUniform(g, [4, 1], { seed: 3 }));
  const r = sub(matmul(x, w), y);
  const loss = mean(mul(r, r));
  const opt =
    optimizer === 'sgd' ? new SGD({ learningRate: 0.05, momentum: 0.9 }) : new Adam({ learningRate: 0.05 });
  return { g, loss, train: opt.minimize(loss) };
}

describe('training with optimizers as graph ops', () => {
  for (const kind of ['sgd', 'adam'] as const) {
    it(`${kind} fits a linear model`, async () => {
      const { x, y, trueW } = problem(1);
      const { g, loss, train } = model(kind);
      const session = new Session(g, { device: new CpuDevice() });
      const first = (await session.run(loss, { x, y })).data[0]!;
      for (let step = 0; step < 300; step++) await session.run(loss, { x, y }, { targets: train });
      const last = (await session.run(loss, { x, y })).data[0]!;
      expect(last).toBeLessThan(first * 1e-3);
      Array.from((await session.readVariable('w')).data).forEach((v, i) =>
        expect(v).toBeCloseTo(trueW[i]!, 1),
      );
    });
  }

  it('continues from a checkpoint exactly as the uninterrupted run', async () => {
    const { x, y } = problem(2);
    const run = async (session: Session, steps: number) => {
      const losses: number[] = [];
      for (let i = 0; i < steps; i++)
        losses.push((await session.run(loss0(session), { x, y }, { targets: trainOf(session) })).data[0]!);
      return losses;
    };
    const sessions = new Map<
      Session,
      { loss: ReturnType<typeof model>['loss']; train: ReturnType<typeof model>['train'] }
    >();
    const make = () => {
      const m = model('adam');
      const s = new Session(m.g, { device: new CpuDevice() });
      sessions.set(s, m);
      return s;
    };
    const loss0 = (s: Session) => sessions.get(s)!.loss;
    const trainOf = (s: Session) => sessions.get(s)!.train;

    const straight = make();
    const all = await run(straight, 20);

    const first = make();
    await run(first, 10);
    const bytes = encodeCheckpoint(await first.checkpoint({ step: 10 }));
    const resumed = make();
    const restored = decodeCheckpoint(bytes);
    expect(restored.metadata.step).toBe(10);
    expect(Object.keys(restored.variables).sort()).toEqual(['adam/step', 'w', 'w/adam_m', 'w/adam_v'].sort());
    await resumed.restore(restored);
    const rest = await run(resumed, 10);
    expect(rest).toEqual(all.slice(10));
    expect(Array.from((await resumed.readVariable('w')).data)).toEqual(
      Array.from((await straight.readVariable('w')).data),
    );
  });

  it('rejects a checkpoint that does not fit the graph, changing nothing', async () => {
    const { g } = model('sgd');
    const session = new Session(g, { device: new CpuDevice() });
    const before = await session.checkpoint();
    const wrong = {
      variables: { ...before.variables, w: HostTensor.zeros('float32', [5, 1]) },
      metadata: {},
    };
    await expect(session.restore(wrong)).rejects.toThrow(
      /variable 'w' is float32\[4,1\] but the checkpoint holds float32\[5,1\]/,
    );
    await expect(session.restore({ variables: {}, metadata: {} })).rejects.toThrow(/no value for variable/);
    expect(Array.from((await session.readVariable('w')).data)).toEqual(Array.from(before.variables.w!.data));
    const corrupt = encodeCheckpoint(before);
    corrupt[corrupt.length - 3]! ^= 1;
    expect(() => decodeCheckpoint(corrupt)).toThrow(KilnError);
    expect(() => decodeCheckpoint(corrupt)).toThrow(/checksum mismatch/);
  });
});
