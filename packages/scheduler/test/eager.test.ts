import { CpuDevice } from '@kiln/backend-cpu';
import {
  add,
  greater,
  KilnError,
  matmul,
  mul,
  neg,
  OPS,
  Prng,
  refTensor,
  relu,
  sub,
  sum,
  transpose,
} from '@kiln/ir';
import { EagerContext, keep, memory, setDefaultDevice, type Tensor, tensor, tidy } from '@kiln/scheduler';
import { beforeAll, describe, expect, it } from 'vitest';

let ctx: EagerContext;
beforeAll(() => {
  ctx = setDefaultDevice(new CpuDevice({ name: 'cpu:eager' }));
});

const randomTensor = (rng: Prng, shape: number[]): Tensor =>
  tensor(
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
    shape,
  );

describe('eager tensors', () => {
  it('run each op when called and agree with the reference', () => {
    const rng = new Prng(1);
    const x = randomTensor(rng, [3, 4]);
    const w = randomTensor(rng, [4, 2]);
    const y = relu(add(matmul(x, w), 0.5));
    const ref = OPS.relu.reference(
      OPS.add.reference(
        [
          OPS.matmul.reference(
            [refTensor('float32', [3, 4], x.dataSync()), refTensor('float32', [4, 2], w.dataSync())],
            { transposeA: false, transposeB: false },
          )[0]!,
          refTensor('float32', [], [0.5]),
        ],
        {},
      ),
      {},
    )[0]!;
    Array.from(y.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(ref.data[i]!, 5));
    // Method syntax is the same op.
    expect(Array.from(x.matmul(w).add(0.5).relu().dataSync())).toEqual(Array.from(y.dataSync()));
  });

  it('print like numpy, with dtype, shape and device', () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.toString()).toBe(
      'tensor([[1, 2, 3],\n        [4, 5, 6]], dtype=float32, shape=[2,3], device=cpu:eager)',
    );
    expect(tensor(new Array(100).fill(1), [100]).toString()).toMatch(/^tensor\(\[1, 1, 1, \.\.\., 1, 1, 1\]/);
  });

  it('let JS control flow drive them: item() and comparisons read values', async () => {
    let h = tensor([8, 6]);
    let steps = 0;
    while (sum(mul(h, h)).item() > 1) {
      h = mul(h, 0.5);
      steps++;
    }
    // |h|^2 = 100 / 4^steps must have fallen under 1: 4 halvings (100/256).
    expect(steps).toBe(Math.ceil(Math.log(100) / Math.log(4)));
    expect(greater(tensor([3]), 2).item()).toBe(1);
    expect(Number(tensor([2.5]))).toBe(2.5);
    expect(await h.array()).toEqual([0.5, 0.375]);
  });

  it('compile each distinct (op, attributes, types) once', () => {
    const before = ctx.compiles;
    const a = tensor([1, 2, 3]);
    for (let i = 0; i < 5; i++) add(a, a);
    expect(ctx.compiles - before).toBe(1);
    add(tensor([1, 2]), tensor([1, 2]));
    expect(ctx.compiles - before).toBe(2);
  });

  it("reuse an op's last signature only on inputs of the same types", () => {
    const s = tensor([10], []);
    const [a2, a3] = [tensor([1, 2]), tensor([1, 2, 3])];
    const i2 = tensor([1, 2], [2], 'int32');
    // One op, alternating between inputs that differ in the first type, the second, the dtype.
    for (let k = 0; k < 3; k++) {
      expect(Array.from(add(s, a2).dataSync())).toEqual([11, 12]);
      expect(Array.from(add(s, a3).dataSync())).toEqual([11, 12, 13]);
      expect(Array.from(add(a3, s).dataSync())).toEqual([11, 12, 13]);
      expect(add(i2, i2).dtype).toBe('int32');
      expect(Array.from(add(a2, a2).dataSync())).toEqual([2, 4]);
    }
    // Results fed back are on their op's own type objects: the same signature, their own values.
    let x = tensor([1, 1]);
    for (let k = 0; k < 4; k++) x = add(x, x);
    expect(Array.from(x.dataSync())).toEqual([16, 16]);
  });

  it('runs an op again after its executable was dropped from a full cache', () => {
    const eager = new EagerContext(new CpuDevice({ name: 'cpu:evicting' }));
    const one = eager.constant({ dtype: 'float32', shape: [1], data: Float32Array.of(1) });
    expect(Array.from(add(one, one).dataSync())).toEqual([2]);
    // 4,096 other executables: the cache is full, and add's, the oldest, is dropped and freed.
    for (let n = 2; n <= 4097; n++) {
      const x = eager.constant({ dtype: 'float32', shape: [n], data: new Float32Array(n) });
      neg(x).dispose();
      x.dispose();
    }
    expect(Array.from(add(one, one).dataSync())).toEqual([2]);
  });

  it('say what went wrong and where: shapes, dtypes, disposed tensors', () => {
    const a = tensor([1, 2, 3]);
    const b = tensor([1, 2]);
    expect(() => add(a, b)).toThrow(
      /add: shapes \[3\] and \[2\] do not broadcast \(at .*eager\.test\.ts:\d+:\d+\)/,
    );
    expect(() => add(a, tensor([1, 2, 3], [3], 'int32'))).toThrow(/differ in dtype/);
    a.dispose();
    const err = (() => {
      try {
        sub(a, 1);
      } catch (e) {
        return e as KilnError;
      }
    })();
    expect(err).toBeInstanceOf(KilnError);
    expect(err?.message).toMatch(
      /sub: tensor #\d+ \(f32\[3\] on cpu:eager\) was disposed and cannot be used \(at .*eager\.test\.ts:\d+:\d+\)/,
    );
    expect(() => a.dataSync()).toThrow(/was disposed/);
  });

  it('free memory with dispose, tidy and using', () => {
    const start = memory().devices['cpu:eager']?.tensors ?? 0;
    const kept = tidy(() => {
      const a = tensor([1, 2, 3]);
      const b = mul(a, 2);
      return { result: add(b, 1), note: 'plain values pass through' };
    });
    expect(memory().devices['cpu:eager']!.tensors).toBe(start + 1);
    expect(Array.from(kept.result.dataSync())).toEqual([3, 5, 7]);
    kept.result.dispose();
    {
      using t = tensor([1, 2]);
      expect(memory().devices['cpu:eager']!.tensors).toBe(start + 1);
      expect(t.isDisposed).toBe(false);
    }
    expect(memory().devices['cpu:eager']!.tensors).toBe(start);
    expect(() => tidy(() => Promise.resolve(1) as never)).toThrow(/synchronous/);
  });

  it('stay flat over 10,000 training-like iterations in scopes', () => {
    // Linear regression by hand-written gradient descent: w <- w - lr * X^T (X w - y) / n.
    const rng = new Prng(7);
    const n = 16;
    const X = keep(randomTensor(rng, [n, 4]));
    const trueW = tensor([[1], [-2], [0.5], [3]]);
    const y = keep(matmul(X, trueW));
    let w = keep(tensor(new Array(4).fill(0), [4, 1]));
    const loss = (): number =>
      tidy(() => sum(mul(sub(matmul(X, w), y), sub(matmul(X, w), y))).item() as number);
    const initialLoss = loss();
    let after100: ReturnType<typeof memory> | undefined;
    for (let step = 0; step < 10_000; step++) {
      const next = tidy(() => {
        const err = sub(matmul(X, w), y);
        const grad = mul(matmul(transpose(X), err), 1 / n);
        return sub(w, mul(grad, 0.05));
      });
      w.dispose();
      w = next;
      if (step === 100) after100 = memory();
    }
    const end = memory();
    expect(end.tensors).toBe(after100!.tensors);
    expect(end.bytes).toBe(after100!.bytes);
    expect(loss()).toBeLessThan(initialLoss * 1e-6);
    Array.from(w.dataSync()).forEach((v, i) => expect(v).toBeCloseTo([1, -2, 0.5, 3][i]!, 3));
  });

  it('refuse to mix devices', () => {
    const other = new EagerContext(new CpuDevice({ name: 'cpu:other' }));
    const a = other.constant({ dtype: 'float32', shape: [1], data: new Float32Array([1]) });
    // Both devices, the line of the call, and how to move a tensor.
    expect(() => add(a, tensor([1]))).toThrow(
      /add: inputs are on different devices \(device cpu:other and device cpu:eager\); move one first: await t\.to\(context\) or t\.toSync\(context\).*\(at .*eager\.test\.ts:\d+:\d+\)/,
    );
    // Moved, they combine.
    expect(Array.from(add(a, tensor([1]).toSync(other)).dataSync())).toEqual([2]);
  });

  it('moves a tensor to another device with to() and toSync()', async () => {
    const other = new EagerContext(new CpuDevice({ name: 'cpu:far' }));
    const here = tensor([
      [1, 2],
      [3, 4],
    ]);
    const there = await here.to(other);
    expect(there.device).toBe('cpu:far');
    expect(there.shape).toEqual([2, 2]);
    expect(Array.from(there.dataSync())).toEqual([1, 2, 3, 4]);
    expect(there.arraySync()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(await there.array()).toEqual(there.arraySync());
    expect(Array.from(here.toSync(other).dataSync())).toEqual([1, 2, 3, 4]);
  });
});
