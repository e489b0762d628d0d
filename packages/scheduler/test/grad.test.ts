import { CpuDevice } from '@kiln/backend-cpu';
import { greater, matmul, mul, sub, sum, tanh, transpose } from '@kiln/ir';
import {
  compile,
  grad,
  randomNormal,
  script,
  setDefaultDevice,
  type Tensor,
  tensor,
  valueAndGrad,
} from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

// Set now, not in beforeAll: the describe block below creates tensors while tests are collected.
setDefaultDevice(new CpuDevice({ name: 'cpu:grad' }));

const close = (a: Tensor, b: Tensor, digits = 4) => {
  expect(a.shape).toEqual(b.shape);
  Array.from(a.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(b.dataSync()[i]!, digits));
};

describe('valueAndGrad', () => {
  // Least squares: L = sum((x w - y)^2), dL/dw = 2 x^T (x w - y), derived by hand and computed eagerly.
  const loss = (x: Tensor, w: Tensor, y: Tensor) => {
    const r = sub(matmul(x, w), y);
    return sum(mul(r, r));
  };
  const x = randomNormal([6, 3], { seed: 1 });
  const y = randomNormal([6, 1], { seed: 2 });
  const w = randomNormal([3, 1], { seed: 3 });
  const byHand = () => mul(matmul(transpose(x), sub(matmul(x, w), y)), 2);

  it('differentiates a non-scalar function as the sum of its elements, and returns that sum', () => {
    const v = tensor([1, -2, 3]);
    const [value, [dv]] = valueAndGrad((t: Tensor) => mul(t, t))(v);
    expect(value.shape).toEqual([]);
    expect(value.item()).toBeCloseTo(14, 5);
    close(dv!, mul(v, 2));
  });

  it('gives the value and the gradients of every tensor argument', () => {
    const [value, [dx, dw, dy]] = valueAndGrad(loss)(x, w, y);
    close(value, loss(x, w, y));
    close(dw!, byHand());
    close(dy!, mul(sub(matmul(x, w), y), -2));
    expect(dx!.shape).toEqual([6, 3]);
  });

  it('differentiates with respect to closed-over weights (wrt), compiling once per signature', () => {
    const model = (input: Tensor) => {
      const r = sub(matmul(input, w), y);
      return sum(mul(r, r));
    };
    const g = grad(model, { wrt: [w] });
    close(g(x)[0]!, byHand());
    close(g(x)[0]!, byHand());
  });

  it('differentiates a compiled function', () => {
    const compiled = compile(loss);
    const [value, [, dw]] = valueAndGrad(compiled)(x, w, y);
    close(value, loss(x, w, y));
    close(dw!, byHand());
    // The compiled function still works on its own.
    close(compiled(x, w, y), loss(x, w, y));
  });

  it('goes through data-dependent control flow when the function is scripted', () => {
    const f = (h: Tensor): Tensor => {
      let a = h;
      if (sum(a).item() > 0) {
        a = tanh(a);
      } else {
        a = mul(a, a);
      }
      return sum(a);
    };
    const scripted = script(f);
    for (const values of [
      [0.5, 1, -0.2],
      [-1, -2, 0.5],
    ]) {
      const h = tensor(values);
      const [, [dh]] = valueAndGrad(scripted)(h);
      const positive = values.reduce((p, q) => p + q) > 0;
      const expected = values.map((v) => (positive ? 1 - Math.tanh(v) ** 2 : 2 * v));
      Array.from(dh!.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    }
  });

  it('explains that an eager function with a data-dependent branch needs script', () => {
    const f = (h: Tensor) => (greater(sum(h), 0).item() ? tanh(h) : h);
    expect(() => valueAndGrad(f)(tensor([1, 2]))).toThrow(/gradients need a graph.*Use script\(\)/s);
  });
});
