import type { ExecutorOpName, OpName } from '../ops/index.js';
import * as nn from './nn.js';
import * as k from './ops.js';

/** Ops a program never calls by name: `fused` and `fusedMatmul` are made by the fusion passes, constants by `tensor`. */
type MadeByKiln = 'fused' | 'fusedMatmul' | 'constant';

/**
 * The functional API's function for every op a program calls, keyed by op name. Its type is
 * derived from the op table: an op added to the IR without a function here is a compile error,
 * as a primitive without a kernel is in each backend. (Executor ops are the graph builder's:
 * `g.placeholder`, `g.variable`, `g.assign`, `cond`, `whileLoop`.)
 */
export const OP_FUNCTIONS = {
  // <generated elementwise functions>
  neg: k.neg,
  abs: k.abs,
  sign: k.sign,
  exp: k.exp,
  log: k.log,
  sqrt: k.sqrt,
  rsqrt: k.rsqrt,
  square: k.square,
  reciprocal: k.reciprocal,
  tanh: k.tanh,
  sigmoid: k.sigmoid,
  relu: k.relu,
  sin: k.sin,
  cos: k.cos,
  floor: k.floor,
  ceil: k.ceil,
  round: k.round,
  isNaN: k.isNaN,
  logicalNot: k.logicalNot,
  add: k.add,
  sub: k.sub,
  mul: k.mul,
  div: k.div,
  pow: k.pow,
  maximum: k.maximum,
  minimum: k.minimum,
  equal: k.equal,
  notEqual: k.notEqual,
  less: k.less,
  lessEqual: k.lessEqual,
  greater: k.greater,
  greaterEqual: k.greaterEqual,
  logicalAnd: k.logicalAnd,
  logicalOr: k.logicalOr,
  logicalXor: k.logicalXor,
  where: k.where,
  cast: k.cast,
  // </generated elementwise functions>
  sum: k.sum,
  prod: k.prod,
  mean: k.mean,
  max: k.max,
  min: k.min,
  argmax: k.argmax,
  argmin: k.argmin,
  matmul: k.matmul,
  reshape: k.reshape,
  transpose: k.transpose,
  broadcastTo: k.broadcastTo,
  slice: k.slice,
  concat: k.concat,
  pad: k.pad,
  gather: k.gather,
  oneHot: k.oneHot,
  softmax: k.softmax,
  logSoftmax: k.logSoftmax,
  conv2d: nn.conv2d,
  conv2dBackpropInput: nn.conv2dBackpropInput,
  conv2dBackpropFilter: nn.conv2dBackpropFilter,
  maxPool: nn.maxPool,
  avgPool: nn.avgPool,
  maxPoolGrad: nn.maxPoolGrad,
  avgPoolGrad: nn.avgPoolGrad,
  softmaxCrossEntropy: nn.softmaxCrossEntropy,
  sparseSoftmaxCrossEntropy: nn.sparseSoftmaxCrossEntropy,
  randomUniform: k.randomUniform,
  randomNormal: k.randomNormal,
} as const satisfies {
  readonly [K in Exclude<OpName, ExecutorOpName | MadeByKiln>]: (...args: never[]) => unknown;
};
