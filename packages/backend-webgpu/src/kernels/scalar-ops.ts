import { type DType, KilnError } from '@kiln/ir';

/**
 * WGSL for one elementwise op on scalar expressions: the single table both the elementwise
 * kernels and generated fusion kernels use, so a fused group computes exactly what its ops do
 * one by one. Values in shaders are f32, i32 or bool (bool storage is the executor's business).
 */
export type ElementwiseOp =
  | 'neg'
  | 'abs'
  | 'sign'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'square'
  | 'reciprocal'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'sin'
  | 'cos'
  | 'floor'
  | 'ceil'
  | 'round'
  | 'isNaN'
  | 'logicalNot'
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  | 'equal'
  | 'notEqual'
  | 'less'
  | 'lessEqual'
  | 'greater'
  | 'greaterEqual'
  | 'logicalAnd'
  | 'logicalOr'
  | 'logicalXor'
  | 'where'
  | 'cast';

type Unary = (x: string, dtype: DType) => string;
type Binary = (a: string, b: string, dtype: DType) => string;

const byType =
  (f: string, i: string): Unary =>
  (x, d) =>
    (d === 'int32' ? i : f).replaceAll('$', x);

const UNARY: Record<string, Unary> = {
  neg: () => '-($)',
  abs: () => 'abs($)',
  sign: byType('fsign_($)', 'sign($)'),
  exp: () => 'fexp_($)',
  log: () => 'flog_($)',
  sqrt: () => 'fsqrt_($)',
  rsqrt: () => 'frsqrt_($)',
  square: () => '(($) * ($))',
  reciprocal: () => '(1.0 / ($))',
  tanh: () => 'ftanh_($)',
  sigmoid: () => 'fsigmoid_($)',
  relu: byType('frelu_($)', 'max($, 0)'),
  sin: () => 'fsin_($)',
  cos: () => 'fcos_($)',
  floor: () => 'floor($)',
  ceil: () => 'ceil($)',
  round: () => 'round($)',
  isNaN: () => 'isnan_($)',
  logicalNot: () => '!($)',
};

/** Orders bools as numbers (false < true) so comparisons work on every dtype. */
const num = (x: string, d: DType) => (d === 'bool' ? `b2u(${x})` : x);
const ordered = (op: string) => (a: string, b: string, d: DType) => {
  const cmp = `(${num(a, d)} ${op} ${num(b, d)})`;
  // Explicit NaN tests: a compiler may treat float compares as ordered or not; the IR says ordered.
  return d === 'float32' ? `(!isnan_(${a}) && !isnan_(${b}) && ${cmp})` : cmp;
};

const BINARY: Record<string, Binary> = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b, d) => (d === 'int32' ? `idiv_(${a}, ${b})` : `(${a} / ${b})`),
  pow: (a, b) => `fpow_(${a}, ${b})`,
  maximum: (a, b, d) => (d === 'int32' ? `max(${a}, ${b})` : `fmax_(${a}, ${b})`),
  minimum: (a, b, d) => (d === 'int32' ? `min(${a}, ${b})` : `fmin_(${a}, ${b})`),
  equal: ordered('=='),
  notEqual: (a, b, d) => `!${ordered('==')(a, b, d)}`,
  less: ordered('<'),
  lessEqual: ordered('<='),
  greater: ordered('>'),
  greaterEqual: ordered('>='),
  logicalAnd: (a, b) => `(${a} && ${b})`,
  logicalOr: (a, b) => `(${a} || ${b})`,
  logicalXor: (a, b) => `(${a} != ${b})`,
};

/** Converts a value between dtypes with the IR's semantics (saturating float -> int, NaN -> 0). */
export function castExpr(x: string, from: DType, to: DType): string {
  if (from === to) return x;
  if (to === 'bool') return from === 'float32' ? `!(${x} == 0.0)` : `(${x} != 0)`;
  if (from === 'bool') return to === 'float32' ? `select(0.0, 1.0, ${x})` : `select(0, 1, ${x})`;
  if (to === 'int32') return `f2i_(${x})`;
  return `f32(${x})`;
}

/** Whether `op` has a WGSL expression here (ops without one run through their decomposition). */
export const hasScalarExpr = (op: string): op is ElementwiseOp =>
  op === 'cast' || op === 'where' || Object.hasOwn(UNARY, op) || Object.hasOwn(BINARY, op);

/** The expression for `op` over `args` (WGSL expressions of dtypes `dtypes`). */
export function scalarExpr(
  op: ElementwiseOp,
  args: readonly string[],
  dtypes: readonly DType[],
  castTo?: DType,
): string {
  const [a, b, c] = args as [string, string, string];
  const d = dtypes[0]!;
  if (op === 'cast') {
    if (castTo === undefined) throw new KilnError('invalid-argument', 'cast needs a dtype');
    return castExpr(a, d, castTo);
  }
  if (op === 'where') return `select(${c}, ${b}, ${a})`;
  const u = UNARY[op];
  if (u) return u(a, d).replaceAll('$', a);
  const bin = BINARY[op];
  if (bin) return bin(a, b, d);
  throw new KilnError('unsupported', `webgpu: no WGSL for elementwise op ${op}`);
}
