import {
  EXECUTOR_OP_NAMES,
  Graph,
  KilnError,
  matmul,
  OP_FUNCTIONS,
  OP_NAMES,
  OPS,
  placeholderNodes,
  refTensor,
  threefry2x32,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

describe('the functional API', () => {
  it('has a function for every op a program calls, and builds that op', () => {
    const called = OP_NAMES.filter(
      (op) =>
        !(EXECUTOR_OP_NAMES as readonly string[]).includes(op) &&
        !['fused', 'fusedMatmul', 'constant'].includes(op),
    );
    expect(Object.keys(OP_FUNCTIONS).sort()).toEqual([...called].sort());
    const g = new Graph();
    const x = g.placeholder('float32', [2, 2], 'x');
    for (const op of ['tanh', 'relu', 'softmax', 'neg'] as const) {
      const y = OP_FUNCTIONS[op](x);
      expect(y.node.op).toBe(op);
    }
  });
});

describe('threefry2x32', () => {
  // Known-answer vectors of Threefry-2x32-20 from the Random123 distribution (also in JAX's tests).
  it.each([
    [
      [0, 0],
      [0, 0],
      [0x6b200159, 0x99ba4efe],
    ],
    [
      [0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x1cb996fc, 0xbb002be7],
    ],
    [
      [0x13198a2e, 0x03707344],
      [0x243f6a88, 0x85a308d3],
      [0xc4923a9c, 0x483df7a0],
    ],
  ])('key %j counter %j gives %j', (key, counter, expected) => {
    const out = new Uint32Array(2);
    threefry2x32(key[0]!, key[1]!, counter[0]!, counter[1]!, out);
    expect(Array.from(out)).toEqual(expected);
  });
});

describe('reference implementations', () => {
  it('random ops have the right moments and depend only on (seed, counter)', () => {
    const attrs = { shape: [20000], seed: 5, counter: 0, dtype: 'float32' as const };
    const [u] = OPS.randomUniform.reference([], { ...attrs, low: 0, high: 1 });
    const [n] = OPS.randomNormal.reference([], { ...attrs, mean: 0, stddev: 1 });
    const mean = (d: Float64Array) => d.reduce((a, b) => a + b, 0) / d.length;
    const variance = (d: Float64Array) => {
      const m = mean(d);
      return mean(d.map((x) => (x - m) ** 2));
    };
    expect(mean(u!.data)).toBeCloseTo(0.5, 1);
    expect(variance(u!.data)).toBeCloseTo(1 / 12, 2);
    expect(mean(n!.data)).toBeCloseTo(0, 1);
    expect(variance(n!.data)).toBeCloseTo(1, 1);
    expect(u!.data.every((x) => x >= 0 && x < 1)).toBe(true);
    const again = OPS.randomUniform.reference([], { ...attrs, low: 0, high: 1 })[0]!;
    expect(again.data).toEqual(u!.data);
    const other = OPS.randomUniform.reference([], { ...attrs, counter: 1, low: 0, high: 1 })[0]!;
    expect(other.data).not.toEqual(u!.data);
  });

  it('softmax is stable for huge logits and sums to one', () => {
    const x = refTensor('float32', [2, 3], [1000, 1001, 1002, -1000, 0, 1000]);
    const [y] = OPS.softmax.reference([x], { axis: -1 });
    expect(y!.data.every(Number.isFinite)).toBe(true);
    expect(y!.data[0]! + y!.data[1]! + y!.data[2]!).toBeCloseTo(1, 6);
    const [ly] = OPS.logSoftmax.reference([x], { axis: 1 });
    ly!.data.forEach((v, i) => expect(Math.exp(v)).toBeCloseTo(y!.data[i]!, 6));
  });
});

describe('shape inference', () => {
  it('broadcasts unknown dimensions', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [null, 1, 5], 'a');
    const b = g.placeholder('float32', [4, 1], 'b');
    expect(g.apply('add', [a, b], {})[0]!.shape).toEqual([null, 4, 5]);
    expect(placeholderNodes(g)).toHaveLength(2);
  });

  it('rejects reshapes that cannot hold the elements, naming both shapes', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [2, 3], 'a');
    expect(() => g.apply('reshape', [a], { shape: [4, -1] })).toThrow(
      /reshape \[2,3\] to \[4,-1\]: 6 elements cannot fill it/,
    );
  });

  it('rejects bad attributes with the op and attribute named', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [2, 3], 'a');
    const b = g.placeholder('float32', [3, 2], 'b');
    expect(() => matmul(a, b, { transposeA: 1 as never })).toThrow(KilnError);
    expect(() => g.apply('sum', [a], { axes: [0, 0] })).toThrow(/repeated axis/);
    expect(() => g.apply('transpose', [a], { perm: [0, 0] })).toThrow(/not a permutation/);
    expect(() => g.apply('slice', [a], { begin: [1, 0], size: [2, -1] })).toThrow(
      /out of bounds in dimension 0/,
    );
  });
});
