import {
  avgPool,
  conv2d,
  Graph,
  interpret,
  KilnError,
  maxPool,
  OPS,
  type OpName,
  opDef,
  Prng,
  type RefTensor,
  refTensor,
  SymbolicTensor,
  softmaxCrossEntropy,
  type VjpRule,
  windowAxis,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

const rng = new Prng(1234);

/** A float32-typed tensor with unrounded float64 values, so finite differences stay precise. */
function randomTensor(shape: number[], draw: () => number = () => rng.normal()): RefTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: Float64Array.from({ length: n }, draw) };
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/**
 * Checks an op's gradient rule against central finite differences of the reference: for a random
 * weighting w of the output, d(sum(w * op(inputs)))/d(input) numerically, and the rule's result for
 * cotangent w evaluated by the reference interpreter on a graph the rule built.
 */
function checkGradient(
  op: OpName,
  inputs: RefTensor[],
  attrs: Record<string, unknown>,
  options: { step: number; wrt?: number[]; tol?: number },
): void {
  const def = opDef(op);
  const g = new Graph();
  const ins = inputs.map((t, i) => g.placeholder(t.dtype, t.shape, `in${i}`));
  const outs = g.apply(op, ins, attrs);
  const node = outs[0]!.node;
  const yShape = outs[0]!.shape as number[];
  const w = randomTensor(yShape);
  const cot = g.placeholder('float32', yShape, 'cotangent');
  const rule = def.gradient as VjpRule<Record<string, unknown>>;
  expect(typeof rule).toBe('function');
  const grads = rule<SymbolicTensor>({ attrs: node.attrs, inputs: ins, outputs: outs, cotangents: [cot] });
  const bound = new Map<number, RefTensor>([...ins.map((t, i) => [t.id, inputs[i]!] as const), [cot.id, w]]);
  const env = interpret(
    g,
    g.nodes.map((n) => n.id),
    bound,
  );
  const objective = (xs: RefTensor[]) => dot(def.reference(xs, node.attrs)[0]!.data, w.data);
  const tol = options.tol ?? 2e-3;
  for (const j of options.wrt ?? inputs.map((_, i) => i)) {
    const grad = grads[j];
    expect(grad, `gradient of input ${j}`).toBeTruthy();
    const analytic = env.get(grad!.id)!;
    expect(analytic.shape).toEqual(inputs[j]!.shape);
    const x = inputs[j]!;
    for (let i = 0; i < x.data.length; i++) {
      const at = (delta: number) => {
        const data = x.data.slice();
        data[i] = data[i]! + delta;
        return objective(inputs.map((t, k) => (k === j ? { ...t, data } : t)));
      };
      const numeric = (at(options.step) - at(-options.step)) / (2 * options.step);
      const got = analytic.data[i]!;
      if (Math.abs(numeric - got) > tol * (1 + Math.abs(numeric))) {
        throw new Error(`${op}: d/d input ${j}[${i}]: rule gives ${got}, finite differences ${numeric}`);
      }
    }
  }
}

/** Values spaced at least `gap` apart in random order: small perturbations never change a max. */
function spaced(shape: number[], gap = 0.05): RefTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: n }, (_, i) => (i - n / 2) * gap);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return { dtype: 'float32', shape, data: Float64Array.from(values) };
}

const convShape = (x: number[], f: number[], attrs: Record<string, unknown>) => {
  const g = new Graph();
  return g.apply('conv2d', [g.placeholder('float32', x, 'x'), g.placeholder('float32', f, 'f')], attrs)[0]!
    .shape;
};

describe('conv2d and pooling shapes', () => {
  it('matches hand-derived sizes for valid, same and explicit padding', () => {
    const x = [1, 28, 28, 1];
    const f = [5, 5, 1, 8];
    expect(convShape(x, f, {})).toEqual([1, 24, 24, 8]);
    expect(convShape(x, f, { padding: 'same' })).toEqual([1, 28, 28, 8]);
    expect(convShape(x, f, { padding: 'same', strides: [2, 2] })).toEqual([1, 14, 14, 8]);
    expect(convShape(x, f, { strides: [2, 3] })).toEqual([1, 12, 8, 8]); // (28-5)/2+1, (28-5)/3+1
    expect(convShape(x, f, { dilations: [2, 2] })).toEqual([1, 20, 20, 8]); // extent 9
    expect(
      convShape(x, f, {
        padding: 'explicit',
        pads: [
          [1, 2],
          [0, 3],
        ],
      }),
    ).toEqual([1, 27, 27, 8]);
    expect(convShape([2, 7, 6, 3], [3, 2, 3, 4], { padding: 'same', strides: [3, 4] })).toEqual([2, 3, 2, 4]);
  });

  it('splits same padding as TensorFlow does (smaller half first)', () => {
    // H=7, K=4, s=2: out 4, total (4-1)*2+4-7 = 3 -> top 1, bottom 2.
    expect(windowAxis(7, 4, 2, 1, 'same', undefined)).toEqual({ out: 4, before: 1 });
    // H=5, K=3, d=2 (extent 5), s=1: total 4 -> 2.
    expect(windowAxis(5, 3, 1, 2, 'same', undefined)).toEqual({ out: 5, before: 2 });
    // Stride larger than the window: no padding needed.
    expect(windowAxis(6, 1, 3, 1, 'same', undefined)).toEqual({ out: 2, before: 0 });
    expect(windowAxis(4, 5, 1, 1, 'valid', undefined)).toBeNull();
  });

  it('pools with tiling strides by default in the functional API', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2, 7, 7, 3], 'x');
    expect(maxPool(x, { windowSize: 2 }).shape).toEqual([2, 3, 3, 3]);
    expect(avgPool(x, { windowSize: 2, padding: 'same' }).shape).toEqual([2, 4, 4, 3]);
    expect(avgPool(x, { windowSize: [3, 1], strides: 1 }).shape).toEqual([2, 5, 7, 3]);
  });

  it('keeps an unknown batch size, and differentiates with it', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 28, 28, 1], 'x');
    const w = g.placeholder('float32', [5, 5, 1, 4], 'w');
    const y = conv2d(x, w, { strides: 2, padding: 'same' });
    expect(y.shape).toEqual([null, 14, 14, 4]);
    const cot = g.placeholder('float32', [null, 14, 14, 4], 'cot');
    const [dx, dw] = callRule('conv2d', y, cot);
    expect(dx!.shape).toEqual([null, 28, 28, 1]);
    expect(dw!.shape).toEqual([5, 5, 1, 4]);
    const p = maxPool(x, { windowSize: 2 });
    const [dp] = callRule('maxPool', p, g.placeholder('float32', [null, 14, 14, 1], 'cp'));
    expect(dp!.shape).toEqual([null, 28, 28, 1]);
    const a = avgPool(x, { windowSize: 3, strides: 2, padding: 'same' });
    const [da] = callRule('avgPool', a, g.placeholder('float32', [null, 14, 14, 1], 'ca'));
    expect(da!.shape).toEqual([null, 28, 28, 1]);
  });

  it('says why a gradient needs a known height and width', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, null, null, 1], 'x');
    const w = g.placeholder('float32', [3, 3, 1, 2], 'w');
    const y = conv2d(x, w, { padding: 'same' });
    const cot = g.placeholder('float32', [null, null, null, 2], 'cot');
    expect(() => callRule('conv2d', y, cot)).toThrow(KilnError);
    expect(() => callRule('conv2d', y, cot)).toThrow(
      'conv2d gradient needs a known input height and width; got [?,?,?,1]',
    );
  });

  it('names both shapes when they do not fit', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [1, 8, 8, 3], 'x');
    expect(() => conv2d(x, g.placeholder('float32', [3, 3, 4, 2], 'w'))).toThrow(
      'conv2d: channels differ (3 vs 4) for input f32[1,8,8,3] and filter f32[3,3,4,2]',
    );
    expect(() => conv2d(x, g.placeholder('float32', [9, 3, 3, 2], 'w2'))).toThrow(
      /does not fit.*f32\[1,8,8,3\].*f32\[9,3,3,2\]|f32\[1,8,8,3\].*f32\[9,3,3,2\].*does not fit|filter of input f32\[1,8,8,3\] and filter f32\[9,3,3,2\]/,
    );
    expect(() => conv2d(x, g.placeholder('float32', [3, 3, 3, 2], 'w3'), { strides: [0, 1] })).toThrow(
      'strides must be two integers >= 1',
    );
    expect(() =>
      conv2d(x, g.placeholder('float32', [3, 3, 3, 2], 'w4'), { padding: 'bogus' as 'same' }),
    ).toThrow("padding must be 'valid', 'same' or 'explicit'");
    const logits = g.placeholder('float32', [4, 10], 'logits');
    expect(() => softmaxCrossEntropy(logits, g.placeholder('float32', [4, 9], 'labels'))).toThrow(
      'f32[4,10] and labels f32[4,9]',
    );
  });
});

/** Applies an op's gradient rule to a node's output `y` with cotangent `cot`. */
function callRule(op: OpName, y: SymbolicTensor, cot: SymbolicTensor) {
  const node = y.node;
  const inputs = node.inputs.map((v) => new SymbolicTensor(y.graph, v));
  const rule = opDef(op).gradient as VjpRule<Record<string, unknown>>;
  return rule<SymbolicTensor>({ attrs: node.attrs, inputs, outputs: [y], cotangents: [cot] });
}

describe('gradient rules against finite differences of the reference', () => {
  const convCases: [string, number[], number[], Record<string, unknown>][] = [
    ['valid', [2, 5, 4, 2], [3, 2, 2, 3], {}],
    ['same, stride 2', [1, 6, 5, 3], [3, 3, 3, 2], { padding: 'same', strides: [2, 2] }],
    ['same, odd total padding, stride 2x1', [2, 7, 4, 1], [4, 2, 1, 2], { padding: 'same', strides: [2, 1] }],
    [
      'explicit, dilated',
      [1, 6, 6, 2],
      [2, 3, 2, 2],
      {
        padding: 'explicit',
        pads: [
          [2, 0],
          [1, 2],
        ],
        dilations: [2, 1],
      },
    ],
    ['size-1 dims', [1, 1, 1, 1], [1, 1, 1, 1], { padding: 'same' }],
  ];

  it.each(convCases)('conv2d (%s)', (_, x, f, attrs) => {
    checkGradient('conv2d', [randomTensor(x), randomTensor(f)], attrs, { step: 0.1 });
  });

  it.each(convCases)('conv2dBackpropInput and conv2dBackpropFilter (%s)', (_, x, f, attrs) => {
    const g = new Graph();
    const y = g.apply(
      'conv2d',
      [g.placeholder('float32', x, 'x'), g.placeholder('float32', f, 'f')],
      attrs,
    )[0]!;
    const dy = randomTensor(y.shape as number[]);
    checkGradient('conv2dBackpropInput', [dy, randomTensor(f)], { ...attrs, inputShape: x }, { step: 0.1 });
    checkGradient('conv2dBackpropFilter', [randomTensor(x), dy], { ...attrs, filterShape: f }, { step: 0.1 });
  });

  const poolCases: [string, Record<string, unknown>][] = [
    ['2x2 stride 2 valid', { windowSize: [2, 2], strides: [2, 2] }],
    ['3x3 stride 2 same (overlapping, clipped)', { windowSize: [3, 3], strides: [2, 2], padding: 'same' }],
    ['3x2 stride 1x2 same', { windowSize: [3, 2], strides: [1, 2], padding: 'same' }],
  ];

  it.each(poolCases)('maxPool (%s)', (_, attrs) => {
    checkGradient('maxPool', [spaced([2, 5, 6, 2])], attrs, { step: 0.01 });
  });

  it.each(poolCases)('avgPool and avgPoolGrad (%s)', (_, attrs) => {
    checkGradient('avgPool', [randomTensor([2, 5, 6, 2])], attrs, { step: 0.1 });
    const g = new Graph();
    const y = g.apply('avgPool', [g.placeholder('float32', [2, 5, 6, 2], 'x')], attrs)[0]!;
    checkGradient(
      'avgPoolGrad',
      [randomTensor(y.shape as number[])],
      { ...attrs, inputShape: [2, 5, 6, 2] },
      { step: 0.1 },
    );
  });

  it('softmaxCrossEntropy, for one-hot and for arbitrary labels', () => {
    const oneHot = refTensor('float32', [3, 4], [0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
    checkGradient('softmaxCrossEntropy', [randomTensor([3, 4]), oneHot], {}, { step: 0.01 });
    checkGradient(
      'softmaxCrossEntropy',
      [randomTensor([2, 3, 5]), randomTensor([2, 3, 5])],
      {},
      { step: 0.01 },
    );
    checkGradient('softmaxCrossEntropy', [randomTensor([1]), randomTensor([1])], {}, { step: 0.01 });
  });

  it('sparseSoftmaxCrossEntropy (logits; labels take none)', () => {
    const labels = refTensor('int32', [2, 3], [0, 4, 2, 1, 3, 3]);
    checkGradient(
      'sparseSoftmaxCrossEntropy',
      [randomTensor([2, 3, 5]), labels],
      {},
      { step: 0.01, wrt: [0] },
    );
  });

  it('says which gradients are not supported', () => {
    expect(OPS.maxPoolGrad.gradient).toEqual({ none: expect.stringContaining('not supported') });
  });
});

describe('softmaxCrossEntropy and maxPoolGrad semantics', () => {
  it('is finite and exact for logits of ±1e4', () => {
    const logits = refTensor('float32', [3, 3], [1e4, -1e4, 0, -1e4, -1e4, -1e4, 1e4, 1e4, -1e4]);
    const labels = refTensor('float32', [3, 3], [1, 0, 0, 0, 1, 0, 0.5, 0.5, 0]);
    const [loss] = OPS.softmaxCrossEntropy.reference([logits, labels], {});
    expect(Array.from(loss!.data)).toEqual([0, Math.fround(Math.log(3)), Math.fround(Math.log(2))]);
    const sparse = refTensor('int32', [3], [1, 0, 5]);
    const [sl] = OPS.sparseSoftmaxCrossEntropy.reference([logits, sparse], {});
    expect(sl!.data[0]).toBe(2e4);
    expect(sl!.data[1]).toBeCloseTo(Math.log(3), 6);
    expect(sl!.data[2]).toBeNaN(); // label 5 is out of range for K = 3
  });

  it('equals -sum(labels * logSoftmax(logits))', () => {
    const logits = randomTensor([4, 6]);
    const labels = randomTensor([4, 6]);
    const [loss] = OPS.softmaxCrossEntropy.reference([logits, labels], {});
    const [ls] = OPS.logSoftmax.reference([logits], { axis: -1 });
    for (let r = 0; r < 4; r++) {
      let want = 0;
      for (let k = 0; k < 6; k++) want -= labels.data[r * 6 + k]! * ls!.data[r * 6 + k]!;
      expect(loss!.data[r]).toBeCloseTo(want, 4);
    }
  });

  it('routes a tied window to its first element in row-major order', () => {
    const x = refTensor('float32', [1, 2, 2, 1], [3, 3, 3, 3]);
    const dy = refTensor('float32', [1, 1, 1, 1], [5]);
    const [dx] = OPS.maxPoolGrad.reference([x, dy, dy], {
      windowSize: [2, 2],
      strides: [2, 2],
      padding: 'valid',
    });
    expect(Array.from(dx!.data)).toEqual([5, 0, 0, 0]);
    const withNaN = refTensor('float32', [1, 2, 2, 1], [1, 7, Number.NaN, Number.NaN]);
    const [dn] = OPS.maxPoolGrad.reference([withNaN, dy, dy], {
      windowSize: [2, 2],
      strides: [2, 2],
      padding: 'valid',
    });
    expect(Array.from(dn!.data)).toEqual([0, 0, 5, 0]);
    expect(
      OPS.maxPool.reference([withNaN], { windowSize: [2, 2], strides: [2, 2], padding: 'valid' })[0]!.data[0],
    ).toBeNaN();
  });

  it('averages over the elements a padded window covers', () => {
    const x = refTensor('float32', [1, 3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const [y] = OPS.avgPool.reference([x], { windowSize: [2, 2], strides: [2, 2], padding: 'same' });
    // same: out 2, total padding 1 -> after; windows [1,2,4,5], [3,6], [7,8], [9].
    expect(Array.from(y!.data)).toEqual([3, 4.5, 7.5, 9]);
  });
});
