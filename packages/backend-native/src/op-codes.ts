import type { OpName } from '@kiln/ir';

/**
 * The op codes of native programs, as native/kernels.h numbers them, and the function in
 * native/elementwise.h that computes each: kiln_ and the op's name, so the generated loops
 * (codegen.ts) and the interpreter (program.cc) call the same one.
 */

/** Op codes, as native/kernels.h numbers them. */
export const UNARY: Partial<Record<OpName, number>> = {
  neg: 0,
  abs: 1,
  sign: 2,
  exp: 3,
  log: 4,
  sqrt: 5,
  rsqrt: 6,
  square: 7,
  reciprocal: 8,
  tanh: 9,
  sigmoid: 10,
  relu: 11,
  sin: 12,
  cos: 13,
  floor: 14,
  ceil: 15,
  round: 16,
  isNaN: 17,
  logicalNot: 18,
};
export const TO_BOOL = 19;
export const COPY = 20;
export const BINARY: Partial<Record<OpName, number>> = {
  add: 32,
  sub: 33,
  mul: 34,
  div: 35,
  pow: 36,
  maximum: 37,
  minimum: 38,
  equal: 39,
  notEqual: 40,
  less: 41,
  lessEqual: 42,
  greater: 43,
  greaterEqual: 44,
  logicalAnd: 45,
  logicalOr: 46,
  logicalXor: 47,
};
export const WHERE = 64;

/** Each op code's function in native/elementwise.h. */
export const FUNCTIONS: ReadonlyMap<number, string> = new Map([
  ...[...Object.entries(UNARY), ...Object.entries(BINARY)].map(
    ([op, code]) => [code!, `kiln_${op}`] as const,
  ),
  [TO_BOOL, 'kiln_toBool'],
  [COPY, 'kiln_copy'],
  [WHERE, 'kiln_where'],
]);
