import { hostConcat, type KernelTable } from '@kiln/ir';
import * as conv from './conv.js';
import { broadcastKernel, castKernel, elementwise, whereKernel } from './elementwise.js';
import { fusedKernel, simdFusedKernel } from './fused.js';
import * as layout from './layout.js';
import * as loss from './loss.js';
import { type FloatGemm, matmulOn, simdGemm, typescriptGemm } from './matmul.js';
import * as pool from './pool.js';
import { randomNormal, randomUniform } from './random.js';
import { argmax, argmin, reduction } from './reduce.js';
import { logSoftmax, softmax } from './softmax.js';

/**
 * The CPU kernel table. Its type demands a kernel for every primitive op: adding a primitive to
 * the IR without one here is a compile error, not a run-time "kernel not registered". Composites
 * are optional: those listed here are fast paths (a fused loop, a one-pass softmax), and any other
 * reaches this device as its decomposition. Executor ops (placeholders, variables, assigns,
 * control flow) are bound or run by the executor, never here.
 */
export const KERNELS: KernelTable = kernelsOn(typescriptGemm);

/**
 * The same table with matmul, the convolutions and fusion groups on WebAssembly SIMD, or null
 * where this runtime has no WebAssembly SIMD (the TypeScript table then serves).
 */
export function simdKernels(): KernelTable | null {
  if (simd === undefined) {
    const gemm = simdGemm();
    simd = gemm ? { ...kernelsOn(gemm), fused: simdFusedKernel } : null;
  }
  return simd;
}
let simd: KernelTable | null | undefined;

function kernelsOn(gemm: FloatGemm): KernelTable {
  return {
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
    where: whereKernel,
    cast: castKernel,
    fused: fusedKernel,
    sum: reduction('sum'),
    prod: reduction('prod'),
    mean: reduction('mean'),
    max: reduction('max'),
    min: reduction('min'),
    argmax,
    argmin,
    matmul: matmulOn(gemm),
    reshape: layout.reshape,
    transpose: layout.transpose,
    broadcastTo: broadcastKernel,
    slice: layout.slice,
    concat: hostConcat,
    pad: layout.pad,
    gather: layout.gather,
    oneHot: layout.oneHot,
    softmax,
    logSoftmax,
    ...conv.convolutionsOn(gemm),
    maxPool: pool.maxPool,
    avgPool: pool.avgPool,
    maxPoolGrad: pool.maxPoolGrad,
    avgPoolGrad: pool.avgPoolGrad,
    softmaxCrossEntropy: loss.softmaxCrossEntropy,
    sparseSoftmaxCrossEntropy: loss.sparseSoftmaxCrossEntropy,
    randomUniform,
    randomNormal,
    constant: layout.constant,
  };
}
