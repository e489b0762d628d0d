import type { TensorHandle } from '../api/handle.js';
import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { unbroadcast } from '../autodiff/unbroadcast.js';
import { DTYPE_INFO, DTYPES, type DType } from '../dtype.js';
import { shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { broadcastIndex, type RefTensor, refTensor } from '../ref-tensor.js';
import { broadcastShapes, formatType, type Shape, sizeOf, type TensorType } from '../shape.js';
import { broadcastPartner, caseShapes } from './case-shapes.js';
import {
  type CompositeOpDef,
  type ConformanceCase,
  composite,
  defineOp,
  type GradientRule,
  type NotDifferentiable,
  streamingCost,
  type ValueDomain,
} from './op-def.js';

const FLOAT: readonly DType[] = ['float32'];
const NUMERIC: readonly DType[] = ['float32', 'int32'];
const BOOL: readonly DType[] = ['bool'];

function checkDType(op: string, t: TensorType, allowed: readonly DType[], role: string): void {
  if (!allowed.includes(t.dtype)) {
    throw shapeError(`${op}: ${role} has type ${formatType(t)}, but ${op} takes ${allowed.join(' or ')}`);
  }
}

const noAttrs = {};
type NoAttrs = typeof noAttrs;
const domainsFor = (dtype: DType, domain: ValueDomain | undefined): ValueDomain[] =>
  dtype === 'float32' ? [domain ?? 'normal', 'special'] : [domain ?? 'normal'];

// ---------------------------------------------------------------- unary

interface UnarySpec {
  readonly dtypes: readonly DType[];
  /** float64 semantics; for int32 it must return the wrapped 32-bit result. */
  readonly fn: (x: number) => number;
  /** int32 semantics where they differ from rounding `fn`: wrap-around arithmetic. */
  readonly int?: (x: number) => number;
  readonly out?: 'same' | 'bool';
  readonly domain?: ValueDomain;
  readonly flops?: number;
  readonly gradient: UnaryGradient;
}

/** d(input) from the input x, the output y and the output's cotangent g; or why there is none. */
type UnaryGradient = (<T extends TensorHandle>(x: T, y: T, g: T) => T) | NotDifferentiable;

function unaryRule(gradient: UnaryGradient): GradientRule<object> {
  if (typeof gradient !== 'function') return gradient;
  return ({ inputs, outputs, cotangents }) => [gradient(inputs[0]!, outputs[0]!, cotangents[0]!)];
}

function unaryCases(rng: Prng, spec: UnarySpec): ConformanceCase<object>[] {
  const cases: ConformanceCase<object>[] = [];
  for (const dtype of spec.dtypes) {
    for (const domain of domainsFor(dtype, spec.domain)) {
      for (const shape of caseShapes(rng, 10))
        cases.push({ inputs: [{ dtype, shape, domain }], attrs: noAttrs });
    }
  }
  return cases;
}

function unary(name: string, spec: UnarySpec) {
  return defineOp({
    name,
    kind: 'elementwise',
    arity: 1,
    attrs: noAttrs,
    infer([x]) {
      checkDType(name, x!, spec.dtypes, 'its input');
      return [{ dtype: spec.out === 'bool' ? 'bool' : x!.dtype, shape: x!.shape }];
    },
    reference([x]) {
      const out = refTensor(spec.out === 'bool' ? 'bool' : x!.dtype, x!.shape);
      const round = DTYPE_INFO[out.dtype].round;
      const fn = x!.dtype === 'int32' && spec.int ? spec.int : spec.fn;
      for (let i = 0; i < out.data.length; i++) out.data[i] = round(fn(x!.data[i]!));
      return [out];
    },
    cost: streamingCost(spec.flops ?? 1),
    cases: (rng) => unaryCases(rng, spec),
    gradient: unaryRule(spec.gradient),
  });
}

/** Round half to even, as numpy and IEEE 754 roundTiesToEven do. */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export const neg: CompositeOpDef<NoAttrs> = composite(
  unary('neg', {
    dtypes: NUMERIC,
    fn: (x) => -x,
    int: (x) => -x | 0,
    gradient: (_x, _y, g) => k.neg(g),
  }),
  ({ inputs: [x] }) => [k.mul(x!, -1)],
);
export const abs: CompositeOpDef<NoAttrs> = composite(
  unary('abs', {
    dtypes: NUMERIC,
    fn: Math.abs,
    int: (x) => Math.abs(x) | 0,
    gradient: (x, _y, g) => k.mul(g, k.sign(x)),
  }),
  ({ inputs: [x] }) => [k.maximum(x!, k.neg(x!))],
);
export const sign: CompositeOpDef<NoAttrs> = composite(
  unary('sign', {
    dtypes: NUMERIC,
    fn: Math.sign,
    gradient: { none: 'piecewise constant: its derivative is zero wherever it exists' },
  }),
  ({ inputs: [x] }) => [
    // x where x is NaN; otherwise (0 < x) - (x < 0) in x's dtype.
    k.where(k.equal(x!, x!), k.sub(k.cast(k.less(0, x!), x!.dtype), k.cast(k.less(x!, 0), x!.dtype)), x!),
  ],
);
export const exp = unary('exp', {
  dtypes: FLOAT,
  fn: Math.exp,
  flops: 10,
  gradient: (_x, y, g) => k.mul(g, y),
});
export const log = unary('log', {
  dtypes: FLOAT,
  fn: Math.log,
  domain: 'positive',
  flops: 10,
  gradient: (x, _y, g) => k.div(g, x),
});
export const sqrt = unary('sqrt', {
  dtypes: FLOAT,
  fn: Math.sqrt,
  domain: 'positive',
  flops: 4,
  gradient: (_x, y, g) => k.div(g, k.mul(y, 2)),
});
export const rsqrt: CompositeOpDef<NoAttrs> = composite(
  unary('rsqrt', {
    dtypes: FLOAT,
    fn: (x) => 1 / Math.sqrt(x),
    domain: 'positive',
    flops: 5,
    gradient: (_x, y, g) => k.mul(g, k.mul(k.mul(y, k.square(y)), -0.5)),
  }),
  ({ inputs: [x] }) => [k.div(1, k.sqrt(x!))],
);
export const square: CompositeOpDef<NoAttrs> = composite(
  unary('square', {
    dtypes: NUMERIC,
    fn: (x) => x * x,
    int: (x) => Math.imul(x, x),
    gradient: (x, _y, g) => k.mul(g, k.mul(x, 2)),
  }),
  ({ inputs: [x] }) => [k.mul(x!, x!)],
);
export const reciprocal: CompositeOpDef<NoAttrs> = composite(
  unary('reciprocal', {
    dtypes: FLOAT,
    fn: (x) => 1 / x,
    domain: 'positive',
    gradient: (_x, y, g) => k.neg(k.mul(g, k.square(y))),
  }),
  ({ inputs: [x] }) => [k.div(1, x!)],
);
export const tanh: CompositeOpDef<NoAttrs> = composite(
  unary('tanh', {
    dtypes: FLOAT,
    fn: Math.tanh,
    flops: 10,
    gradient: (_x, y, g) => k.mul(g, k.sub(1, k.square(y))),
  }),
  ({ inputs: [x] }) => [k.sub(1, k.div(2, k.add(k.exp(k.mul(x!, 2)), 1)))],
);
export const sigmoidOp: CompositeOpDef<NoAttrs> = composite(
  unary('sigmoid', {
    dtypes: FLOAT,
    fn: sigmoid,
    flops: 12,
    gradient: (_x, y, g) => k.mul(g, k.mul(y, k.sub(1, y))),
  }),
  ({ inputs: [x] }) => [k.div(1, k.add(k.exp(k.neg(x!)), 1))],
);
export const relu: CompositeOpDef<NoAttrs> = composite(
  unary('relu', {
    dtypes: NUMERIC,
    fn: (x) => (x > 0 ? x : Number.isNaN(x) ? x : 0),
    // From the output (y > 0 exactly where x > 0), so the backward pass keeps only what the next
    // layer reads anyway: the pre-activation is then free to stay inside a fused epilogue.
    gradient: (_x, y, g) => k.where(k.greater(y, 0), g, 0),
  }),
  ({ inputs: [x] }) => [k.maximum(x!, 0)],
);
export const sin = unary('sin', {
  dtypes: FLOAT,
  fn: Math.sin,
  flops: 10,
  gradient: (x, _y, g) => k.mul(g, k.cos(x)),
});
export const cos = unary('cos', {
  dtypes: FLOAT,
  fn: Math.cos,
  flops: 10,
  gradient: (x, _y, g) => k.neg(k.mul(g, k.sin(x))),
});
export const floor = unary('floor', {
  dtypes: FLOAT,
  fn: Math.floor,
  gradient: { none: 'piecewise constant: its derivative is zero wherever it exists' },
});
export const ceil: CompositeOpDef<NoAttrs> = composite(
  unary('ceil', {
    dtypes: FLOAT,
    fn: Math.ceil,
    gradient: { none: 'piecewise constant: its derivative is zero wherever it exists' },
  }),
  ({ inputs: [x] }) => [k.neg(k.floor(k.neg(x!)))],
);
export const round = unary('round', {
  dtypes: FLOAT,
  fn: roundHalfEven,
  gradient: { none: 'piecewise constant: its derivative is zero wherever it exists' },
});
export const isNaNOp: CompositeOpDef<NoAttrs> = composite(
  unary('isNaN', {
    dtypes: FLOAT,
    fn: (x) => (Number.isNaN(x) ? 1 : 0),
    out: 'bool',
    gradient: { none: 'a predicate: its output is bool' },
  }),
  ({ inputs: [x] }) => [k.logicalNot(k.equal(x!, x!))],
);
export const logicalNot: CompositeOpDef<NoAttrs> = composite(
  unary('logicalNot', {
    dtypes: BOOL,
    fn: (x) => (x ? 0 : 1),
    gradient: { none: 'logic on bools' },
  }),
  ({ inputs: [x] }) => [k.equal(x!, false)],
);

// ---------------------------------------------------------------- binary

interface BinarySpec {
  readonly dtypes: readonly DType[];
  readonly fn: (a: number, b: number) => number;
  /** int32 semantics where they differ from rounding `fn`: wrap-around arithmetic. */
  readonly int?: (a: number, b: number) => number;
  readonly out?: 'same' | 'bool';
  readonly domain?: ValueDomain;
  readonly gradient: BinaryGradient;
}

/** d(a), d(b) before unbroadcasting, from the inputs, the output and its cotangent g. */
type BinaryGradient =
  | (<T extends TensorHandle>(a: T, b: T, y: T, g: T) => readonly [T, T])
  | NotDifferentiable;

function binaryRule(gradient: BinaryGradient): GradientRule<object> {
  if (typeof gradient !== 'function') return gradient;
  return ({ inputs: [a, b], outputs: [y], cotangents: [g] }) => {
    const [da, db] = gradient(a!, b!, y!, g!);
    return [unbroadcast(da, a!.shape), unbroadcast(db, b!.shape)];
  };
}

/** Evaluates a binary function over two broadcast inputs into `out`. */
export function broadcastBinary(
  a: RefTensor,
  b: RefTensor,
  out: RefTensor,
  fn: (x: number, y: number) => number,
): RefTensor {
  const ia = broadcastIndex(out.shape, a.shape);
  const ib = broadcastIndex(out.shape, b.shape);
  const round = DTYPE_INFO[out.dtype].round;
  for (let i = 0; i < out.data.length; i++) out.data[i] = round(fn(a.data[ia(i)]!, b.data[ib(i)]!));
  return out;
}

function binaryCases(rng: Prng, spec: BinarySpec): ConformanceCase<object>[] {
  const cases: ConformanceCase<object>[] = [];
  for (const dtype of spec.dtypes) {
    for (const domain of domainsFor(dtype, spec.domain)) {
      for (const shape of caseShapes(rng, 10)) {
        const other = broadcastPartner(rng, shape);
        const [x, y] = rng.bool() ? [shape, other] : [other, shape];
        cases.push({
          inputs: [
            { dtype, shape: x, domain },
            { dtype, shape: y, domain },
          ],
          attrs: noAttrs,
        });
      }
    }
  }
  return cases;
}

function binary(name: string, spec: BinarySpec) {
  return defineOp({
    name,
    kind: 'elementwise',
    arity: 2,
    attrs: noAttrs,
    infer([a, b]) {
      checkDType(name, a!, spec.dtypes, 'its first input');
      if (a!.dtype !== b!.dtype) {
        throw shapeError(`${name}: input types ${formatType(a!)} and ${formatType(b!)} differ in dtype`);
      }
      const shape = broadcastShapes(a!.shape, b!.shape, name);
      return [{ dtype: spec.out === 'bool' ? 'bool' : a!.dtype, shape }];
    },
    reference([a, b]) {
      const shape = broadcastShapes(a!.shape, b!.shape, name) as number[];
      const out = refTensor(spec.out === 'bool' ? 'bool' : a!.dtype, shape);
      const fn = a!.dtype === 'int32' && spec.int ? spec.int : spec.fn;
      return [broadcastBinary(a!, b!, out, fn)];
    },
    cost: streamingCost(1),
    cases: (rng) => binaryCases(rng, spec),
    gradient: binaryRule(spec.gradient),
  });
}

/** int32 division: truncates toward zero; division by zero gives 0 on every device. */
export const intDiv = (a: number, b: number): number => (b === 0 ? 0 : Math.trunc(a / b) | 0);

export const add = binary('add', {
  dtypes: NUMERIC,
  fn: (a, b) => a + b,
  int: (a, b) => (a + b) | 0,
  gradient: (_a, _b, _y, g) => [g, g],
});
export const sub: CompositeOpDef<NoAttrs> = composite(
  binary('sub', {
    dtypes: NUMERIC,
    fn: (a, b) => a - b,
    int: (a, b) => (a - b) | 0,
    gradient: (_a, _b, _y, g) => [g, k.neg(g)],
  }),
  ({ inputs: [a, b] }) => [k.add(a!, k.neg(b!))],
);
export const mul = binary('mul', {
  dtypes: NUMERIC,
  fn: (a, b) => a * b,
  int: Math.imul,
  gradient: (a, b, _y, g) => [k.mul(g, b), k.mul(g, a)],
});
export const div = binary('div', {
  dtypes: NUMERIC,
  fn: (a, b) => a / b,
  int: intDiv,
  gradient: (_a, b, y, g) => [k.div(g, b), k.neg(k.div(k.mul(g, y), b))],
});
export const pow = binary('pow', {
  dtypes: FLOAT,
  fn: Math.pow,
  domain: 'positive',
  gradient: (a, b, y, g) => [k.mul(g, k.mul(b, k.pow(a, k.sub(b, 1)))), k.mul(g, k.mul(y, k.log(a)))],
});
// Ties send the cotangent to the first operand.
export const maximum = binary('maximum', {
  dtypes: NUMERIC,
  fn: Math.max,
  gradient: (a, b, _y, g) => {
    const first = k.greaterEqual(a, b);
    return [k.where(first, g, 0), k.where(first, 0, g)];
  },
});
export const minimum = binary('minimum', {
  dtypes: NUMERIC,
  fn: Math.min,
  gradient: (a, b, _y, g) => {
    const first = k.lessEqual(a, b);
    return [k.where(first, g, 0), k.where(first, 0, g)];
  },
});

const bool = (x: boolean) => (x ? 1 : 0);
const compare = (name: string, fn: (a: number, b: number) => boolean) =>
  binary(name, {
    dtypes: DTYPES,
    fn: (a, b) => bool(fn(a, b)),
    out: 'bool',
    gradient: { none: 'a comparison: its output is bool' },
  });
export const equal = compare('equal', (a, b) => a === b);
export const notEqual: CompositeOpDef<NoAttrs> = composite(
  compare('notEqual', (a, b) => a !== b),
  ({ inputs: [a, b] }) => [k.logicalNot(k.equal(a!, b!))],
);
export const less = compare('less', (a, b) => a < b);
export const lessEqual: CompositeOpDef<NoAttrs> = composite(
  compare('lessEqual', (a, b) => a <= b),
  ({ inputs: [a, b] }) => [k.logicalOr(k.less(a!, b!), k.equal(a!, b!))],
);
export const greater: CompositeOpDef<NoAttrs> = composite(
  compare('greater', (a, b) => a > b),
  ({ inputs: [a, b] }) => [k.less(b!, a!)],
);
export const greaterEqual: CompositeOpDef<NoAttrs> = composite(
  compare('greaterEqual', (a, b) => a >= b),
  ({ inputs: [a, b] }) => [k.lessEqual(b!, a!)],
);

export const logicalAnd: CompositeOpDef<NoAttrs> = composite(
  binary('logicalAnd', {
    dtypes: BOOL,
    fn: (a, b) => bool(a !== 0 && b !== 0),
    gradient: { none: 'logic on bools' },
  }),
  ({ inputs: [a, b] }) => [k.where(a!, b!, false)],
);
export const logicalOr: CompositeOpDef<NoAttrs> = composite(
  binary('logicalOr', {
    dtypes: BOOL,
    fn: (a, b) => bool(a !== 0 || b !== 0),
    gradient: { none: 'logic on bools' },
  }),
  ({ inputs: [a, b] }) => [k.where(a!, true, b!)],
);
export const logicalXor: CompositeOpDef<NoAttrs> = composite(
  binary('logicalXor', {
    dtypes: BOOL,
    fn: (a, b) => bool((a !== 0) !== (b !== 0)),
    gradient: { none: 'logic on bools' },
  }),
  ({ inputs: [a, b] }) => [k.notEqual(a!, b!)],
);

// ---------------------------------------------------------------- where, cast

export const where = defineOp({
  name: 'where',
  kind: 'elementwise',
  arity: 3,
  attrs: noAttrs,
  infer([c, a, b]) {
    checkDType('where', c!, BOOL, 'its condition');
    if (a!.dtype !== b!.dtype) {
      throw shapeError(`where: branches ${formatType(a!)} and ${formatType(b!)} differ in dtype`);
    }
    const shape: Shape = broadcastShapes(broadcastShapes(c!.shape, a!.shape, 'where'), b!.shape, 'where');
    return [{ dtype: a!.dtype, shape }];
  },
  reference([c, a, b]) {
    const shape = broadcastShapes(
      broadcastShapes(c!.shape, a!.shape, 'where'),
      b!.shape,
      'where',
    ) as number[];
    const out = refTensor(a!.dtype, shape);
    const ic = broadcastIndex(shape, c!.shape);
    const ia = broadcastIndex(shape, a!.shape);
    const ib = broadcastIndex(shape, b!.shape);
    for (let i = 0; i < sizeOf(shape); i++) out.data[i] = c!.data[ic(i)] ? a!.data[ia(i)]! : b!.data[ib(i)]!;
    return [out];
  },
  cost: streamingCost(1),
  gradient: ({ inputs: [c, a, b], cotangents: [g] }) => [
    null,
    unbroadcast(k.where(c!, g!, 0), a!.shape),
    unbroadcast(k.where(c!, 0, g!), b!.shape),
  ],
  cases(rng) {
    const cases: ConformanceCase<object>[] = [];
    for (const dtype of DTYPES) {
      for (const shape of caseShapes(rng, 8)) {
        cases.push({
          inputs: [
            { dtype: 'bool', shape: broadcastPartner(rng, shape) },
            { dtype, shape },
            {
              dtype,
              shape: broadcastPartner(rng, shape),
              domain: dtype === 'float32' ? 'special' : 'normal',
            },
          ],
          attrs: noAttrs,
        });
      }
    }
    return cases;
  },
});

export const cast = defineOp({
  name: 'cast',
  kind: 'elementwise',
  arity: 1,
  attrs: { dtype: attr.dtype },
  infer: ([x], { dtype }) => [{ dtype, shape: x!.shape }],
  reference([x], { dtype }) {
    return [refTensor(dtype, x!.shape, x!.data)];
  },
  cost: streamingCost(1),
  // Only float-to-float passes a gradient; the other casts are piecewise constant or discrete.
  gradient: ({ inputs: [x], outputs: [y], cotangents: [g] }) => [
    x!.dtype === 'float32' && y!.dtype === 'float32' ? g! : null,
  ],
  cases(rng) {
    const cases: ConformanceCase<{ dtype: DType }>[] = [];
    for (const from of DTYPES) {
      for (const to of DTYPES) {
        for (const shape of caseShapes(rng, 4)) {
          cases.push({
            inputs: [{ dtype: from, shape, domain: from === 'float32' ? 'special' : 'normal' }],
            attrs: { dtype: to },
          });
        }
      }
    }
    return cases;
  },
});

/** Every elementwise op, by name: the first rows of the op table and the fusion allowlist. */
export const ELEMENTWISE_OPS = {
  // <generated elementwise table>
  neg: neg,
  abs: abs,
  sign: sign,
  exp: exp,
  log: log,
  sqrt: sqrt,
  rsqrt: rsqrt,
  square: square,
  reciprocal: reciprocal,
  tanh: tanh,
  sigmoid: sigmoidOp,
  relu: relu,
  sin: sin,
  cos: cos,
  floor: floor,
  ceil: ceil,
  round: round,
  isNaN: isNaNOp,
  logicalNot: logicalNot,
  add: add,
  sub: sub,
  mul: mul,
  div: div,
  pow: pow,
  maximum: maximum,
  minimum: minimum,
  equal: equal,
  notEqual: notEqual,
  less: less,
  lessEqual: lessEqual,
  greater: greater,
  greaterEqual: greaterEqual,
  logicalAnd: logicalAnd,
  logicalOr: logicalOr,
  logicalXor: logicalXor,
  where: where,
  cast: cast,
  // </generated elementwise table>
} as const;
