import { epochOrder, gatherBatch, loadMnist } from '@kiln/example-mnist/data';
import { mlp, mlpForward } from '@kiln/example-mnist/models';
import {
  Adam,
  add,
  ClusterSession,
  CpuDevice,
  type Device,
  dataParallel,
  EagerContext,
  type HostTensor,
  logSoftmax,
  matmul,
  mean,
  mul,
  neg,
  Prng,
  relu,
  Session,
  shardBatch,
  sum,
  type Tensor,
  ThreadPool,
  tensor,
  valueAndGrad,
} from 'kiln-tensor';
import { isComposite, runConformance } from 'kiln-tensor/plugin';
import { afterEach, describe, expect, it } from 'vitest';
import { LoopsDevice } from '../src/loops-device.js';

const MODULE = new URL('../src/loops-device.ts', import.meta.url).href;
const { train } = loadMnist();
const BATCH = 32;
const STEPS = 12;

const feeds = (step: number) =>
  gatherBatch(train, epochOrder(train.labels.length, 7, 0).subarray(step * BATCH, (step + 1) * BATCH));

/** Mean absolute difference relative to the reference's mean magnitude: float32 rounding, not a bug. */
function expectClose(got: readonly number[], want: readonly number[], tolerance = 1e-3) {
  const scale = want.reduce((s, x) => s + Math.abs(x), 0) / want.length;
  const diff = got.reduce((s, x, i) => s + Math.abs(x - want[i]!), 0) / got.length;
  expect(diff / scale).toBeLessThan(tolerance);
}

/** The MNIST MLP trained under a Session on `device`: the loss of each step. */
async function sessionLosses(device: Device): Promise<{ losses: number[]; session: Session }> {
  const model = mlp();
  const session = new Session(model.graph, { device });
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++)
    losses.push((await session.run(model.loss, feeds(s), { targets: model.train })).data[0]!);
  return { losses, session };
}

describe('a third-party device that claims only the primitives', () => {
  let pool: ThreadPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('passes the conformance kit for everything it claims, and every composite runs expanded', async () => {
    const report = await runConformance(new LoopsDevice());
    expect(report.failures).toEqual([]);
    expect(report.unsupported.every((u) => isComposite(u.op))).toBe(true);
    expect(report.passed).toBeGreaterThan(1000);
  });

  it('trains the MNIST MLP under a Session as the CPU device does', async () => {
    const [loops, cpu] = await Promise.all([
      sessionLosses(new LoopsDevice()),
      sessionLosses(new CpuDevice()),
    ]);
    expectClose(loops.losses, cpu.losses);
    expect(loops.losses.at(-1)!).toBeLessThan(loops.losses[0]!);
    const expanded = loops.session.fallbacks.map((f) => f.op);
    for (const op of ['relu', 'logSoftmax', 'mean']) expect(expanded).toContain(op);
  });

  it('trains eagerly, tensors on the device and gradients by valueAndGrad', () => {
    const run = (device: Device) => {
      const ctx = new EagerContext(device);
      const rng = new Prng(3);
      const init = (rows: number, cols: number) =>
        tensor(
          ctx,
          Array.from({ length: rows * cols }, () => rng.normal() * Math.sqrt(2 / rows)),
          [rows, cols],
        );
      let params = [init(784, 64), init(64, 10)];
      // Mean cross-entropy of a 784-64-10 MLP, as the graph models write it.
      const loss = (x: Tensor, y: Tensor, w1: Tensor, w2: Tensor) =>
        neg(mean(sum(mul(y, logSoftmax(matmul(relu(matmul(x, w1)), w2))), -1)));
      const step = valueAndGrad(loss, { name: 'mlp loss' });
      const losses: number[] = [];
      for (let s = 0; s < STEPS; s++) {
        const { x, y } = feeds(s);
        const [value, grads] = step(
          tensor(ctx, x.data, x.shape as number[]),
          tensor(ctx, y.data, y.shape as number[]),
          ...params,
        );
        losses.push(value.dataSync()[0]!);
        params = params.map((p, i) => add(p, grads[i + 2]!.mul(-0.1)) as Tensor);
      }
      return losses;
    };
    const loops = run(new LoopsDevice());
    expectClose(loops, run(new CpuDevice()));
    expect(loops.at(-1)!).toBeLessThan(loops[0]!);
  });

  it('trains data-parallel on worker threads that load it by module', async () => {
    pool = await ThreadPool.create({ workers: 2, device: { module: MODULE } });
    const dp = dataParallel(mlpForward().graph, {
      devices: pool.names,
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: new Adam({ learningRate: 1e-3 }),
    });
    const session = new ClusterSession(dp.graph, pool);
    const losses: number[] = [];
    for (let s = 0; s < STEPS; s++)
      losses.push(
        ((await session.run(dp.loss, shardBatch(feeds(s), dp), { targets: dp.train })) as HostTensor)
          .data[0]!,
      );
    const plan = await session.plan(dp.loss, shardBatch(feeds(0), dp), dp.train);
    expect(plan.expansions.some((e) => e.op === 'relu')).toBe(true);
    expectClose(losses, (await sessionLosses(new CpuDevice())).losses, 1e-2);
  });
});
