import { cond, whileOp } from './control.js';
import { conv2d, conv2dBackpropFilter, conv2dBackpropInput } from './conv.js';
import * as ew from './elementwise.js';
import { fused } from './fused.js';
import { fusedMatmul } from './fused-matmul.js';
import * as layout from './layout.js';
import { softmaxCrossEntropy, sparseSoftmaxCrossEntropy } from './loss.js';
import { matmul } from './matmul.js';
import type { AnyOpDef, AttrsOf, DecomposeRule, OpDef } from './op-def.js';
import { avgPool, avgPoolGrad, maxPool, maxPoolGrad } from './pool.js';
import { randomNormal, randomUniform } from './random.js';
import * as red from './reduce.js';
import { logSoftmax, softmax } from './softmax.js';
import { assign, constant, placeholder, variable } from './state.js';

/**
 * Every op kiln knows, by name. This table is the single source of truth: the builder API, the
 * verifier, the serializer, the conformance kit and every device's kernel table are checked
 * against its keys, so adding an op here without a kernel is a type error in each backend.
 */
export const OPS = {
  ...ew.ELEMENTWISE_OPS,
  fused,
  sum: red.sum,
  prod: red.prod,
  mean: red.mean,
  max: red.max,
  min: red.min,
  argmax: red.argmax,
  argmin: red.argmin,
  matmul,
  fusedMatmul,
  reshape: layout.reshape,
  transpose: layout.transpose,
  broadcastTo: layout.broadcastTo,
  slice: layout.slice,
  concat: layout.concat,
  pad: layout.pad,
  gather: layout.gather,
  oneHot: layout.oneHot,
  softmax,
  logSoftmax,
  conv2d,
  conv2dBackpropInput,
  conv2dBackpropFilter,
  maxPool,
  avgPool,
  maxPoolGrad,
  avgPoolGrad,
  softmaxCrossEntropy,
  sparseSoftmaxCrossEntropy,
  randomUniform,
  randomNormal,
  constant,
  placeholder,
  variable,
  assign,
  cond,
  while: whileOp,
} as const;

export type OpName = keyof typeof OPS;
export type OpAttrs<K extends OpName> = (typeof OPS)[K] extends OpDef<infer S> ? AttrsOf<S> : never;

/**
 * Ops a device never receives: the executor binds placeholders, variables and assigns (see
 * ops/state.ts) and runs the regions of control flow itself (see ops/control.ts).
 */
export const EXECUTOR_OP_NAMES = ['placeholder', 'variable', 'assign', 'cond', 'while'] as const;
export type ExecutorOpName = (typeof EXECUTOR_OP_NAMES)[number];
export const EXECUTOR_OPS: ReadonlySet<OpName> = new Set<OpName>(EXECUTOR_OP_NAMES);

export function isOpName(name: unknown): name is OpName {
  return typeof name === 'string' && Object.hasOwn(OPS, name);
}

export function opDef(name: OpName): AnyOpDef {
  return OPS[name] as unknown as AnyOpDef;
}

export const OP_NAMES = Object.keys(OPS) as OpName[];

/** Ops with a decomposition rule: a device may claim them as fast paths, or get their expansion. */
export type CompositeOpName = {
  [K in OpName]: (typeof OPS)[K] extends { readonly decompose: DecomposeRule<never> } ? K : never;
}[OpName];

/** Ops every device must run: the kernel ABI's required set (see PRIMITIVES.md). */
export type PrimitiveOpName = Exclude<OpName, CompositeOpName | ExecutorOpName>;

export function isComposite(op: OpName): op is CompositeOpName {
  return opDef(op).decompose !== undefined;
}

export const COMPOSITE_OP_NAMES: readonly CompositeOpName[] = OP_NAMES.filter(isComposite);
export const PRIMITIVE_OP_NAMES: readonly PrimitiveOpName[] = OP_NAMES.filter(
  (op): op is PrimitiveOpName => !isComposite(op) && !EXECUTOR_OPS.has(op),
);
