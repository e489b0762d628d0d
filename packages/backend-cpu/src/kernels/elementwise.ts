import type { DType, KernelFactory, KernelFn, KernelNode, OpName } from '@kiln/ir';
import { broadcastStrides, collapse, scalarInputs } from './strided.js';
import { compileStridedLoop, type StridedLoop } from './strided-loop.js';

/**
 * Elementwise kernels are generated loops. Each op is a JS expression over x0, x1, x2 (the input
 * elements) taken from the fixed tables below, never from user input; a generated function per
 * (expression, arity) keeps every loop monomorphic, so V8 inlines the arithmetic, and nothing is
 * allocated per element. The fused kernel (fused.ts) builds whole programs from the same tables.
 */
export type Expr = string;

const FLOAT_UNARY: Partial<Record<OpName, Expr>> = {
  neg: '-x0',
  abs: 'Math.abs(x0)',
  sign: 'Math.sign(x0)',
  exp: 'Math.exp(x0)',
  log: 'Math.log(x0)',
  sqrt: 'Math.sqrt(x0)',
  rsqrt: '1 / Math.sqrt(x0)',
  square: 'x0 * x0',
  reciprocal: '1 / x0',
  tanh: 'Math.tanh(x0)',
  sigmoid: '1 / (1 + Math.exp(-x0))',
  relu: 'x0 > 0 || x0 !== x0 ? x0 : 0',
  sin: 'Math.sin(x0)',
  cos: 'Math.cos(x0)',
  floor: 'Math.floor(x0)',
  ceil: 'Math.ceil(x0)',
  round: 'H.roundHalfEven(x0)',
  isNaN: 'x0 !== x0 ? 1 : 0',
  logicalNot: 'x0 ? 0 : 1',
};

// int32 results are stored through an Int32Array, which wraps modulo 2^32 like the reference;
// only products need Math.imul, since they can exceed 2^53 before the wrap.
const INT_OVERRIDES: Partial<Record<OpName, Expr>> = {
  square: 'Math.imul(x0, x0)',
  mul: 'Math.imul(x0, x1)',
  div: 'x1 === 0 ? 0 : Math.trunc(x0 / x1)',
  relu: 'x0 > 0 ? x0 : 0',
};

const BINARY: Partial<Record<OpName, Expr>> = {
  add: 'x0 + x1',
  sub: 'x0 - x1',
  mul: 'x0 * x1',
  div: 'x0 / x1',
  pow: 'Math.pow(x0, x1)',
  maximum: 'Math.max(x0, x1)',
  minimum: 'Math.min(x0, x1)',
  equal: 'x0 === x1 ? 1 : 0',
  notEqual: 'x0 !== x1 ? 1 : 0',
  less: 'x0 < x1 ? 1 : 0',
  lessEqual: 'x0 <= x1 ? 1 : 0',
  greater: 'x0 > x1 ? 1 : 0',
  greaterEqual: 'x0 >= x1 ? 1 : 0',
  logicalAnd: 'x0 && x1 ? 1 : 0',
  logicalOr: 'x0 || x1 ? 1 : 0',
  logicalXor: '!x0 !== !x1 ? 1 : 0',
};

export const CAST_TO: Record<DType, Expr> = {
  float32: 'x0',
  // Saturating, NaN to 0; the Int32Array store then truncates toward zero.
  int32: 'x0 !== x0 ? 0 : x0 >= 2147483647 ? 2147483647 : x0 <= -2147483648 ? -2147483648 : x0',
  bool: 'x0 !== 0 ? 1 : 0',
};

const loops = new Map<string, StridedLoop>();

/** The strided loop for an expression over `arity` inputs (these of them scalars), generated once. */
function loopFor(expr: Expr, arity: number, scalar: readonly boolean[]): StridedLoop {
  const key = `${arity}:${scalar.map(Number).join('')}:${expr}`;
  let loop = loops.get(key);
  if (!loop) {
    loop = compileStridedLoop(arity, 1, 'x', `o0[o] = ${expr};`, scalar);
    loops.set(key, loop);
  }
  return loop;
}

/** A kernel evaluating `expr` over broadcast inputs into the single output. */
export function expressionKernel(expr: Expr, node: KernelNode<unknown>): KernelFn {
  const outShape = node.outputs[0]!.shape as number[];
  const { shape, strides } = collapse(
    outShape,
    node.inputs.map((t) => broadcastStrides(outShape, t.shape as number[])),
  );
  const loop = loopFor(expr, node.inputs.length, scalarInputs(shape, strides));
  return (ins, outs) => loop(ins, outs, shape, strides);
}

/** The expression of a unary or binary elementwise op for inputs of `dtype`. */
/** Whether an elementwise op has an expression here (ops without one run through their decomposition). */
export const hasExpression = (op: string): boolean =>
  op === 'where' || op === 'cast' || Object.hasOwn(FLOAT_UNARY, op) || Object.hasOwn(BINARY, op);

export function pick(op: OpName, dtype: DType): Expr {
  const expr = (dtype === 'int32' ? INT_OVERRIDES[op] : undefined) ?? FLOAT_UNARY[op] ?? BINARY[op];
  if (!expr) throw new Error(`no elementwise expression for ${op}`);
  return expr;
}

export const elementwise =
  (op: OpName): KernelFactory<unknown> =>
  (node) =>
    expressionKernel(pick(op, node.inputs[0]!.dtype), node);

export const WHERE: Expr = 'x0 ? x1 : x2';
export const whereKernel: KernelFactory<unknown> = (node) => expressionKernel(WHERE, node);
export const castKernel: KernelFactory<{ dtype: DType }> = (node) =>
  expressionKernel(CAST_TO[node.attrs.dtype], node);
/** broadcastTo is the identity expression over a broadcast input. */
export const broadcastKernel: KernelFactory<unknown> = (node) => expressionKernel('x0', node);
