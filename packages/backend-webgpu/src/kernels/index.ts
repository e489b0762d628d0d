import type { CompositeOpName, OpName, PrimitiveOpName } from '@kiln/ir';
import { constant } from './constant.js';
import * as conv from './conv.js';
import { elementwise, fused } from './elementwise.js';
import type { KernelFactory } from './kernel.js';
import * as layout from './layout.js';
import { matmul } from './matmul.js';
import { avgPoolGrad, maxPoolGrad, poolKernel } from './pool.js';
import { randomKernel } from './random.js';
import { argReduction, reduction } from './reduce.js';
import { crossEntropy, softmaxKernel } from './softmax.js';

// biome-ignore lint/suspicious/noExplicitAny: each factory reads its own op's attributes
type AnyFactory = KernelFactory<any>;

/**
 * The WebGPU kernel table. Its type demands an entry for every primitive, so a primitive added to
 * the IR without a WGSL kernel is a compile error here, as in backend-cpu; the composites listed
 * are fast paths (the fused loop, one-pass softmax and losses).
 */
export const KERNELS: { readonly [K in PrimitiveOpName]: AnyFactory } & {
  readonly [K in CompositeOpName]?: AnyFactory;
} = {
  neg: elementwise('neg'),
  abs: elementwise('abs'),
  sign: elementwise('sign'),
  exp: elementwise('exp'),
  log: elementwise('log'),
  sqrt: elementwise('sqrt'),
  rsqrt: elementwise('rsqrt'),
  square: elementwise('square'),
  reciprocal: elementwise('reciprocal'),
  tanh: elementwise('tanh'),
  sigmoid: elementwise('sigmoid'),
  relu: elementwise('relu'),
  sin: elementwise('sin'),
  cos: elementwise('cos'),
  floor: elementwise('floor'),
  ceil: elementwise('ceil'),
  round: elementwise('round'),
  isNaN: elementwise('isNaN'),
  logicalNot: elementwise('logicalNot'),
  add: elementwise('add'),
  sub: elementwise('sub'),
  mul: elementwise('mul'),
  div: elementwise('div'),
  pow: elementwise('pow'),
  maximum: elementwise('maximum'),
  minimum: elementwise('minimum'),
  equal: elementwise('equal'),
  notEqual: elementwise('notEqual'),
  less: elementwise('less'),
  lessEqual: elementwise('lessEqual'),
  greater: elementwise('greater'),
  greaterEqual: elementwise('greaterEqual'),
  logicalAnd: elementwise('logicalAnd'),
  logicalOr: elementwise('logicalOr'),
  logicalXor: elementwise('logicalXor'),
  where: elementwise('where'),
  cast: elementwise('cast'),
  fused,
  sum: reduction('sum'),
  prod: reduction('prod'),
  mean: reduction('mean'),
  max: reduction('max'),
  min: reduction('min'),
  argmax: argReduction('argmax'),
  argmin: argReduction('argmin'),
  matmul: matmul,
  reshape: layout.reshape,
  transpose: layout.transpose,
  broadcastTo: layout.broadcastTo,
  slice: layout.slice,
  concat: layout.concat,
  pad: layout.pad,
  gather: layout.gather,
  oneHot: layout.oneHot,
  softmax: softmaxKernel(false),
  logSoftmax: softmaxKernel(true),
  conv2d: conv.conv2d,
  conv2dBackpropInput: conv.conv2dBackpropInput,
  conv2dBackpropFilter: conv.conv2dBackpropFilter,
  maxPool: poolKernel('max'),
  avgPool: poolKernel('avg'),
  maxPoolGrad: maxPoolGrad,
  avgPoolGrad: avgPoolGrad,
  softmaxCrossEntropy: crossEntropy(false),
  sparseSoftmaxCrossEntropy: crossEntropy(true),
  randomUniform: randomKernel('uniform'),
  randomNormal: randomKernel('normal'),
  constant,
};

export function kernelFor(op: OpName): AnyFactory | undefined {
  return (KERNELS as Partial<Record<OpName, AnyFactory>>)[op] ?? undefined;
}
