import { CpuDevice } from '@kiln/backend-cpu';
import {
  add,
  Graph,
  randomNormal as graphRandomNormal,
  matmul,
  mean,
  mul,
  relu,
  SGD,
  sub,
  sum,
} from '@kiln/ir';
import { compile, EagerContext, memory, Session, type Tensor, tidy } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

/**
 * A small soak: thousands of eager steps, compiled calls across more shapes than the cache holds,
 * and Session training steps. After a warm-up, live tensors and device bytes must not grow: a leak
 * of one tensor per step shows here as thousands.
 */

const live = (device: string) => memory().devices[device] ?? { tensors: 0, bytes: 0 };

describe('soak', () => {
  it('eager training steps: nothing grows over 3,000 steps', () => {
    const eager = new EagerContext(new CpuDevice({ name: 'cpu:soak-eager' }));
    const constant = (n: number, v: number) =>
      eager.constant({ dtype: 'float32', shape: [n, n], data: new Float32Array(n * n).fill(v) });
    let w = constant(16, 0.01);
    const x = constant(16, 1);
    const step = () => {
      const next = tidy(() => {
        const y = relu(matmul(x, w));
        const grad = mul(matmul(x, y), 1e-4);
        return sub(w, grad);
      });
      w.dispose();
      w = next;
    };
    for (let i = 0; i < 100; i++) step();
    const before = { ...live('cpu:soak-eager'), used: eager.device.bytesInUse };
    for (let i = 0; i < 3000; i++) step();
    expect({ ...live('cpu:soak-eager'), used: eager.device.bytesInUse }).toEqual(before);
    expect(before.tensors).toBe(2);
  });

  it('compiled calls over three times more shapes than the cache: nothing grows', () => {
    const eager = new EagerContext(new CpuDevice({ name: 'cpu:soak-compile' }));
    const f = compile((a: Tensor, b: Tensor) => sum(relu(add(matmul(a, b), 1))), {
      cacheSize: 16,
      retraceWarningAt: 1e9,
    });
    const round = () => {
      for (let n = 1; n <= 48; n++) {
        const a = eager.constant({
          dtype: 'float32',
          shape: [n, 8],
          data: new Float32Array(n * 8).fill(0.5),
        });
        const b = eager.constant({
          dtype: 'float32',
          shape: [8, n],
          data: new Float32Array(8 * n).fill(0.5),
        });
        const r = f(a, b) as Tensor;
        expect(r.item()).toBeCloseTo(n * n * 3, 3);
        r.dispose();
        a.dispose();
        b.dispose();
      }
    };
    round();
    const before = { ...live('cpu:soak-compile'), used: eager.device.bytesInUse };
    for (let i = 0; i < 10; i++) round();
    expect({ ...live('cpu:soak-compile'), used: eager.device.bytesInUse }).toEqual(before);
    expect(f.stats.cached).toBe(16);
    expect(before.tensors).toBe(0);
  });

  it('Session training steps: nothing grows over 1,000 steps', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 8], 'x');
    const w = g.variable('w', graphRandomNormal(g, [8, 4], { seed: 3 }));
    const loss = mean(mul(relu(matmul(x, w)), 1));
    const train = new SGD({ learningRate: 0.01 }).minimize(loss);
    const device = new CpuDevice({ name: 'cpu:soak-session' });
    const session = new Session(g, { device });
    const batch = Array.from({ length: 4 }, (_, i) => Array.from({ length: 8 }, (_, j) => (i + j) / 10));
    for (let i = 0; i < 20; i++) await session.run(loss, { x: batch }, { targets: train });
    const before = live('cpu:soak-session');
    for (let i = 0; i < 1000; i++) await session.run(loss, { x: batch }, { targets: train });
    expect(live('cpu:soak-session')).toEqual(before);
    await session.close();
    expect(live('cpu:soak-session')).toEqual({ tensors: 0, bytes: 0 });
  });
});
