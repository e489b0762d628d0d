import * as api from '../api/ops.js';
import type { DType } from '../dtype.js';
import type { KilnErrorCode } from '../errors.js';
import type { SymbolicTensor } from '../graph/builder.js';
import type { Frame } from './scope.js';
import { bool, describe, dtypeOfPlain, isScalarLike, num, type SValue, tensorValue } from './values.js';

/**
 * JavaScript's operators on lowering-time values. On plain values they are folded with
 * JavaScript's own semantics. On numbers read from tensors (scalar tensors, see values.ts) they
 * become ops, following what JavaScript does with those numbers: `/` and `**` give fractions, an
 * int32 meets a fraction in float32. On other tensors they are rejected, as in JavaScript, where
 * `a + b` on two tensor objects would not add them.
 */
export interface EmitContext {
  readonly frame: Frame;
  /** Throws a script error at the expression being lowered. */
  fail(message: string, code?: KilnErrorCode): never;
  /** Runs a graph-building step, turning what it throws into a script error at the expression. */
  emit<T>(build: () => T): T;
}

type Fold = (x: unknown, y: unknown) => unknown;
// The operands are JavaScript primitives; applying the operator to them is JavaScript's semantics.
const n = (x: unknown) => x as number;
const FOLDS: Readonly<Record<string, Fold>> = {
  '+': (x, y) => n(x) + n(y),
  '-': (x, y) => n(x) - n(y),
  '*': (x, y) => n(x) * n(y),
  '/': (x, y) => n(x) / n(y),
  '%': (x, y) => n(x) % n(y),
  '**': (x, y) => n(x) ** n(y),
  '<': (x, y) => n(x) < n(y),
  '<=': (x, y) => n(x) <= n(y),
  '>': (x, y) => n(x) > n(y),
  '>=': (x, y) => n(x) >= n(y),
  '===': (x, y) => x === y,
  '!==': (x, y) => x !== y,
  // biome-ignore lint/suspicious/noDoubleEquals: JavaScript's loose equality is the semantics folded here.
  '==': (x, y) => x == y,
  // biome-ignore lint/suspicious/noDoubleEquals: as above.
  '!=': (x, y) => x != y,
  '&': (x, y) => n(x) & n(y),
  '|': (x, y) => n(x) | n(y),
  '^': (x, y) => n(x) ^ n(y),
  '<<': (x, y) => n(x) << n(y),
  '>>': (x, y) => n(x) >> n(y),
  '>>>': (x, y) => n(x) >>> n(y),
};

type Binary = (a: SymbolicTensor, b: SymbolicTensor) => SymbolicTensor;
const ARITHMETIC: Readonly<Record<string, readonly [string, Binary]>> = {
  '+': ['add', api.add],
  '-': ['sub', api.sub],
  '*': ['mul', api.mul],
  '/': ['div', api.div],
  '**': ['pow', api.pow],
};
const COMPARISONS: Readonly<Record<string, readonly [string, Binary]>> = {
  '<': ['less', api.less],
  '<=': ['lessEqual', api.lessEqual],
  '>': ['greater', api.greater],
  '>=': ['greaterEqual', api.greaterEqual],
  '===': ['equal', api.equal],
  '==': ['equal', api.equal],
  '!==': ['notEqual', api.notEqual],
  '!=': ['notEqual', api.notEqual],
};

/** A JavaScript primitive for folding; undefined for arrays, objects and tensors. */
function primitive(v: SValue): { value: unknown } | undefined {
  switch (v.kind) {
    case 'number':
    case 'boolean':
    case 'string':
      return { value: v.value };
    case 'null':
      return { value: null };
    case 'undefined':
      return { value: undefined };
    default:
      return undefined;
  }
}

function fromPrimitive(x: unknown, ctx: EmitContext): SValue {
  if (typeof x === 'number') return num(x);
  if (typeof x === 'boolean') return bool(x);
  if (typeof x === 'string') return { kind: 'string', value: x };
  return ctx.fail(`the result ${String(x)} is not a value a script can hold`);
}

export function scalarConstant(frame: Frame, value: number | boolean, dtype: DType): SymbolicTensor {
  const x = Number(value);
  const data =
    dtype === 'float32'
      ? new Float32Array([x])
      : dtype === 'int32'
        ? new Int32Array([x])
        : new Uint8Array([x ? 1 : 0]);
  return frame.graph.constant({ dtype, shape: [], data });
}

/** A number, boolean or tensor as a tensor of `dtype` in the context's frame (cast if needed). */
export function asTensor(ctx: EmitContext, v: SValue, dtype: DType): SymbolicTensor {
  if (v.kind === 'tensor') {
    const t = ctx.frame.use(v.tensor);
    return t.dtype === dtype ? t : ctx.emit(() => api.cast(t, dtype));
  }
  if (v.kind === 'number' || v.kind === 'boolean') return scalarConstant(ctx.frame, v.value, dtype);
  return ctx.fail(`${describe(v)} cannot be used as a tensor here`);
}

const isBoolish = (v: SValue) => v.kind === 'boolean' || (v.kind === 'tensor' && v.tensor.dtype === 'bool');

/** int32 unless a float is involved (a float32 tensor, a fraction) or the operator makes one. */
function numericDType(values: readonly SValue[], float: boolean): DType {
  const floaty = values.some(
    (v) =>
      (v.kind === 'tensor' && v.tensor.dtype === 'float32') ||
      (v.kind === 'number' && !Number.isInteger(v.value)),
  );
  return float || floaty ? 'float32' : 'int32';
}

/** `a op b` for a binary operator (arithmetic, comparison, bitwise); `label` names `++` and `--`. */
export function binary(ctx: EmitContext, op: string, a: SValue, b: SValue, label = op): SValue {
  const pa = primitive(a);
  const pb = primitive(b);
  if (pa && pb) return fromPrimitive(FOLDS[op]!(pa.value, pb.value), ctx);
  const arithmetic = ARITHMETIC[op];
  const comparison = COMPARISONS[op];
  const tensorObject = [a, b].find((v) => v.kind === 'tensor' && !v.scalar);
  if (tensorObject) {
    const instead = arithmetic?.[0] ?? comparison?.[0];
    ctx.fail(
      `'${label}' on a tensor is not supported: in JavaScript it would not apply to the tensor's elements (a tensor is an object)${instead ? `; use ${instead}(a, b)` : ''}`,
      'unsupported',
    );
  }
  for (const v of [a, b]) {
    if (!isScalarLike(v))
      ctx.fail(`'${label}' cannot combine ${describe(v)} with a number read from a tensor`);
  }
  if (arithmetic) {
    if ([a, b].some(isBoolish)) ctx.fail(`'${label}' on a boolean is not supported`, 'unsupported');
    const dtype = numericDType([a, b], op === '/' || op === '**');
    const x = asTensor(ctx, a, dtype);
    const y = asTensor(ctx, b, dtype);
    return tensorValue(
      ctx.emit(() => arithmetic[1](x, y)),
      true,
    );
  }
  if (comparison) {
    const equality = op === '===' || op === '!==' || op === '==' || op === '!=';
    let dtype: DType;
    if (isBoolish(a) || isBoolish(b)) {
      if (!equality || !isBoolish(a) || !isBoolish(b))
        ctx.fail(`'${label}' between a boolean and a number is not supported`, 'unsupported');
      dtype = 'bool';
    } else dtype = numericDType([a, b], false);
    const x = asTensor(ctx, a, dtype);
    const y = asTensor(ctx, b, dtype);
    return tensorValue(
      ctx.emit(() => comparison[1](x, y)),
      true,
    );
  }
  if (op === '%') {
    return ctx.fail(
      "'%' on a number read from a tensor is not supported (kiln has no remainder op)",
      'unsupported',
    );
  }
  return ctx.fail(`'${label}' on a number read from a tensor is not supported`, 'unsupported');
}

/** Whether a value is true, as JavaScript decides it: known now, or a bool scalar tensor. */
export type Truth = { readonly known: boolean } | { readonly tensor: SymbolicTensor };

export function truthOf(ctx: EmitContext, v: SValue): Truth {
  const p = primitive(v);
  if (p) return { known: Boolean(p.value) };
  if (v.kind !== 'tensor') return ctx.fail(`${describe(v)} is always true here; test a number or a boolean`);
  if (!v.scalar) {
    return ctx.fail(
      'a tensor is an object, which JavaScript always takes for true; read its value with .item() (for example `if (sum(x).item() > 0)`)',
      'unsupported',
    );
  }
  const t = ctx.frame.use(v.tensor);
  if (t.dtype === 'bool') return { tensor: t };
  const nonzero = ctx.emit(() => api.notEqual(t, 0));
  if (t.dtype === 'int32') return { tensor: nonzero };
  // NaN is false in JavaScript, and not equal to 0.
  return { tensor: ctx.emit(() => api.logicalAnd(nonzero, api.logicalNot(api.isNaN(t)))) };
}

export function truthTensor(ctx: EmitContext, t: Truth): SymbolicTensor {
  return 'tensor' in t ? t.tensor : scalarConstant(ctx.frame, t.known, 'bool');
}

/** `op a` for a unary operator. */
export function unary(ctx: EmitContext, op: string, a: SValue): SValue {
  const p = primitive(a);
  if (p) {
    const x = p.value as number;
    if (op === '-') return num(-x);
    if (op === '+') return num(+x);
    if (op === '!') return bool(!x);
    if (op === '~') return num(~x);
  }
  if (op === '!') {
    const t = truthOf(ctx, a);
    if ('known' in t) return bool(!t.known);
    return tensorValue(
      ctx.emit(() => api.logicalNot(t.tensor)),
      true,
    );
  }
  if (a.kind === 'tensor' && !a.scalar) {
    const instead = op === '-' ? '; use neg(x)' : '';
    ctx.fail(`'${op}' on a tensor is not supported${instead}`, 'unsupported');
  }
  if (a.kind !== 'tensor' || isBoolish(a) || op === '~')
    return ctx.fail(`'${op}' on ${describe(a)} is not supported`, 'unsupported');
  const t = ctx.frame.use(a.tensor);
  if (op === '+') return tensorValue(t, true);
  return tensorValue(
    ctx.emit(() => api.neg(t)),
    true,
  );
}

/**
 * The common type of two values that meet where control flow joins (the branches of an `if`,
 * an iteration of a loop), or a reason they cannot. Plain numbers take the dtype of the tensor
 * they meet; numbers read from tensors may widen from int32 to float32; other tensors keep theirs.
 */
export function joinType(a: SValue, b: SValue): { dtype: DType; scalar: boolean } | string {
  for (const v of [a, b]) {
    if (v.kind !== 'number' && v.kind !== 'boolean' && v.kind !== 'tensor')
      return `${describe(v)} cannot flow through tensor control flow (only tensors, numbers and booleans can)`;
  }
  const rank = (v: SValue) => (v.kind === 'tensor' ? v.tensor.shape.length : 0);
  if (rank(a) !== rank(b)) return 'their ranks differ';
  const dtypeOf = (v: SValue) => (v.kind === 'tensor' ? v.tensor.dtype : dtypeOfPlain(v));
  const fixed = (v: SValue) => v.kind === 'tensor' && !v.scalar;
  const da = dtypeOf(a);
  const db = dtypeOf(b);
  let dtype: DType;
  if (da === db) dtype = da;
  else if (da === 'bool' || db === 'bool') return 'their dtypes differ';
  else dtype = 'float32';
  if ((fixed(a) && da !== dtype) || (fixed(b) && db !== dtype)) return 'their dtypes differ';
  return { dtype, scalar: isScalarLike(a) && isScalarLike(b) };
}
