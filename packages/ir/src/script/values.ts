import type { DType } from '../dtype.js';
import type { SymbolicTensor } from '../graph/builder.js';
import { formatType, type Shape } from '../shape.js';
import type { ParsedScript } from './script.js';

/**
 * What an expression is while a script is lowered. Plain JavaScript values (numbers, booleans,
 * strings, arrays and option objects of them) are computed at lowering time; tensors are values
 * of the graph being built.
 *
 * A tensor marked `scalar` stands for what is a plain number or boolean when the same function
 * runs eagerly: a value read with `.item()`, a comparison of such values, or a loop counter that
 * had to become a tensor because a tensor-dependent loop changes it. Operators (`+`, `<`, `&&`, ...)
 * and conditions accept these; on other tensors they are rejected, as JavaScript would not apply
 * them to tensor objects either.
 */
export type SValue =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'boolean'; readonly value: boolean }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'null' }
  | { readonly kind: 'undefined' }
  | { readonly kind: 'tensor'; readonly tensor: SymbolicTensor; readonly scalar: boolean }
  | { readonly kind: 'array'; readonly items: readonly SValue[] }
  | { readonly kind: 'object'; readonly entries: ReadonlyMap<string, SValue> }
  | { readonly kind: 'function'; readonly script: ParsedScript }
  /** A captured tensor, made a graph input when first read. */
  | { readonly kind: 'capture'; readonly name: string; readonly handle: CapturedTensor }
  /** A let/const before its declaration ran (JavaScript's temporal dead zone). */
  | { readonly kind: 'uninitialized' };

/** Anything with a dtype and a shape: an eager tensor, a symbolic one, a variable's handle. */
export interface CapturedTensor {
  readonly dtype: DType;
  readonly shape: Shape;
}

export const num = (value: number): SValue => ({ kind: 'number', value });
export const bool = (value: boolean): SValue => ({ kind: 'boolean', value });
export const UNDEFINED: SValue = { kind: 'undefined' };
export const tensorValue = (tensor: SymbolicTensor, scalar = false): SValue => ({
  kind: 'tensor',
  tensor,
  scalar,
});

/** A number, a boolean, or a tensor that stands for one. */
export function isScalarLike(v: SValue): boolean {
  return v.kind === 'number' || v.kind === 'boolean' || (v.kind === 'tensor' && v.scalar);
}

/** The dtype a plain number or boolean takes when it has to become a tensor. */
export function dtypeOfPlain(v: SValue): DType {
  if (v.kind === 'boolean') return 'bool';
  return v.kind === 'number' && Number.isInteger(v.value) ? 'int32' : 'float32';
}

export function describe(v: SValue): string {
  switch (v.kind) {
    case 'number':
      return `the number ${v.value}`;
    case 'boolean':
      return `the boolean ${v.value}`;
    case 'string':
      return `the string ${JSON.stringify(v.value)}`;
    case 'null':
    case 'undefined':
      return v.kind;
    case 'tensor':
      return v.scalar
        ? `a ${v.tensor.dtype === 'bool' ? 'boolean' : 'number'} read from a tensor (${formatType(v.tensor.type)})`
        : `a tensor ${formatType(v.tensor.type)}`;
    case 'array':
      return `an array of ${v.items.length}`;
    case 'object':
      return 'an object';
    case 'function':
      return `the scripted function '${v.script.name}'`;
    case 'capture':
      return `the captured tensor '${v.name}'`;
    case 'uninitialized':
      return 'a variable before its declaration';
  }
}
