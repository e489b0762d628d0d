import {
  add,
  type ConcreteType,
  cond,
  conv2d,
  Graph,
  type GraphData,
  gradients,
  greater,
  interpret,
  KilnError,
  matmul,
  maxPool,
  mean,
  mul,
  OP_NAMES,
  opDef,
  Prng,
  type RefTensor,
  refTensor,
  relu,
  reshape,
  type SymbolicTensor,
  scriptToGraph,
  softmaxCrossEntropy,
  sum,
  tanh,
  tensor,
  type ValueId,
  whileLoop,
  withFloat64References,
} from '@kiln/ir';
import { generateInput } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

/**
 * Gradient checks: every rule against central finite differences, all in float64 (the references
 * keep float64 precision inside withFloat64References), on the op's own conformance cases.
 */
const EPS = 1e-6;
const RTOL = 1e-5;

function evaluate(g: GraphData, feeds: ReadonlyMap<ValueId, RefTensor>, out: ValueId): Float64Array {
  const nodes = g.nodes.filter((n) => n.op !== 'placeholder').map((n) => n.id);
  return interpret(g, nodes, feeds).get(out)!.data;
}

/** Checks d(sum(w * f(inputs)))/d(inputs) against finite differences, for every float input. */
function checkGradient(
  build: (g: Graph, ins: SymbolicTensor[]) => SymbolicTensor,
  types: readonly ConcreteType[],
  values: RefTensor[],
  rng: Prng,
): void {
  withFloat64References(() => {
    const g = new Graph();
    const ins = types.map((t, i) => g.placeholder(t.dtype, t.shape, `in${i}`));
    checkGraphGradient(g, ins, build(g, ins), values, rng);
  });
}

/** The same for a graph built elsewhere (a scripted function's), given its inputs and output. */
function checkGraphGradient(
  g: Graph,
  ins: readonly SymbolicTensor[],
  y: SymbolicTensor,
  values: RefTensor[],
  rng: Prng,
): void {
  withFloat64References(() => {
    const n = y.shape.reduce((a: number, d) => a * (d ?? 1), 1);
    const w = tensor(
      g,
      Array.from({ length: n }, () => rng.normal()),
      y.shape as number[],
    );
    const loss = sum(mul(y, w));
    const floats = ins.filter((t) => t.dtype === 'float32');
    const grads = gradients([loss], floats);
    const feeds = (vals: RefTensor[]) => new Map(ins.map((t, i) => [t.id, vals[i]!]));
    floats.forEach((x, fi) => {
      const k = ins.indexOf(x);
      const analytic = grads[fi]
        ? evaluate(g, feeds(values), grads[fi]!.id)
        : new Float64Array(values[k]!.data.length);
      for (let j = 0; j < Math.min(values[k]!.data.length, 12); j++) {
        const probe = (delta: number) => {
          const v = values.map((t) => ({ ...t, data: t.data.slice() }));
          v[k]!.data[j]! += delta;
          return evaluate(g, feeds(v), loss.id)[0]!;
        };
        const numeric = (probe(EPS) - probe(-EPS)) / (2 * EPS);
        const err = Math.abs(numeric - analytic[j]!);
        if (!(err <= RTOL * (1 + Math.abs(numeric)))) {
          throw new Error(
            `input ${k} element ${j}: finite difference ${numeric}, gradient ${analytic[j]} (x = ${values[k]!.data[j]})`,
          );
        }
      }
    });
  });
}

/** A seed of the op's own: its cases do not change when another op is added to the table. */
const seedOf = (op: string) =>
  [...op].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);

describe('gradient rules against finite differences (float64)', () => {
  const differentiable = OP_NAMES.filter(
    (op) => typeof opDef(op).gradient === 'function' && op !== 'cond' && op !== 'while' && op !== 'gather',
  );

  it('covers every op that has a rule', () => {
    expect(differentiable.length).toBeGreaterThan(25);
  });

  for (const op of differentiable) {
    it(op, () => {
      const def = opDef(op);
      const rng = new Prng(seedOf(op));
      const cases = def
        .cases(rng)
        .filter((c) => c.inputs.some((i) => i.dtype === 'float32'))
        .filter((c) => c.inputs.every((i) => i.shape.every((d) => d > 0)))
        .slice(0, 4);
      expect(cases.length, `${op} has float cases`).toBeGreaterThan(0);
      for (const c of cases) {
        // NaN and infinities have no finite differences: draw ordinary values for those inputs.
        const values = c.inputs.map((i) =>
          generateInput(rng, i.domain === 'special' ? { ...i, domain: 'normal' } : i),
        );
        checkGradient(
          (g, ins) => g.apply(op, ins, c.attrs)[0]!,
          c.inputs.map((i) => ({ dtype: i.dtype, shape: i.shape })),
          values,
          rng,
        );
      }
    });
  }
});

describe('gradients of composite models', () => {
  const rng = new Prng(7);
  const normal = (shape: number[]) =>
    refTensor(
      'float32',
      shape,
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
    );

  it('an MLP', () => {
    const types = [
      { dtype: 'float32' as const, shape: [4, 5] },
      { dtype: 'float32' as const, shape: [5, 6] },
      { dtype: 'float32' as const, shape: [6] },
      { dtype: 'float32' as const, shape: [6, 3] },
    ];
    checkGradient(
      (_g, [x, w1, b1, w2]) => tanh(matmul(relu(add(matmul(x!, w1!), b1!)), w2!)),
      types,
      types.map((t) => normal(t.shape)),
      rng,
    );
  });

  it('a cond whose branch depends on the data', () => {
    const types = [{ dtype: 'float32' as const, shape: [3] }];
    for (let trial = 0; trial < 4; trial++) {
      checkGradient(
        (g, [x]) =>
          cond(
            g,
            greater(sum(x!), 0),
            [x!],
            (a) => [mul(a, a)],
            (a) => [tanh(a)],
          )[0]!,
        types,
        [normal([3])],
        rng,
      );
    }
  });

  it('a bounded while loop, unrolled', () => {
    const types = [{ dtype: 'float32' as const, shape: [3] }];
    for (let trial = 0; trial < 4; trial++) {
      checkGradient(
        (g, [x]) =>
          whileLoop(
            g,
            [x!],
            (a) => greater(sum(mul(a, a)), 0.5),
            (a) => [mul(tanh(a), 0.8)],
            { maxIterations: 8 },
          )[0]!,
        types,
        [normal([3])],
        rng,
      );
    }
  });

  it('a small CNN: conv, relu, max-pool, dense, softmax cross-entropy', () => {
    const types = [
      { dtype: 'float32' as const, shape: [2, 6, 6, 1] },
      { dtype: 'float32' as const, shape: [3, 3, 1, 2] },
      { dtype: 'float32' as const, shape: [18, 3] },
    ];
    const labels = refTensor('float32', [2, 3], [1, 0, 0, 0, 0, 1]);
    checkGradient(
      (g, [x, filter, w]) => {
        const h = maxPool(relu(conv2d(x!, filter!, { padding: 'same' })), { windowSize: 2 });
        const logits = matmul(reshape(h, [2, 18]), w!);
        return mean(softmaxCrossEntropy(logits, tensor(g, labels.data, [2, 3])));
      },
      types,
      types.map((t) => normal(t.shape)),
      rng,
    );
  });

  it('a scripted loop: a short one unrolled, a long counted one as a bounded while', () => {
    function shortLoop(x: SymbolicTensor): SymbolicTensor {
      let h = x;
      for (let i = 0; i < 5; i++) {
        h = mul(tanh(h), 1.1);
      }
      return sum(h);
    }
    function longLoop(x: SymbolicTensor): SymbolicTensor {
      let h = x;
      for (let i = 0; i < 80; i++) {
        h = add(mul(tanh(h), 0.9), 0.01);
      }
      return sum(h);
    }
    for (const fn of [shortLoop, longLoop]) {
      const s = scriptToGraph(fn, [{ dtype: 'float32', shape: [3] }]);
      const whiles = s.graph.nodes.filter((n) => n.op === 'while');
      expect(whiles.length).toBe(fn === longLoop ? 1 : 0);
      if (fn === longLoop) expect(whiles[0]!.attrs.maxIterations).toBe(80);
      checkGraphGradient(s.graph, s.inputs, s.outputs[0]!, [normal([3])], rng);
    }
  });

  it('refuses an unbounded loop with a clear error, not a wrong gradient', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const [y] = whileLoop(
      g,
      [x],
      (a) => greater(sum(a), 1),
      (a) => [mul(a, 0.5)],
      { name: 'halve' },
    );
    expect(() => gradients([sum(y!)], [x])).toThrow(KilnError);
    expect(() => gradients([sum(y!)], [x])).toThrow(
      /unbounded while loop .*node #\d+ \(while 'halve'\).*maxIterations/,
    );
  });
});
