import type { TensorHandle } from '../api/handle.js';
import type { AttrSchema, AttrsInput, AttrsOf } from '../attrs.js';
import type { DType } from '../dtype.js';
import type { Prng } from '../prng.js';
import type { RefTensor } from '../ref-tensor.js';
import { assertTensorFits, type ConcreteShape, type TensorType } from '../shape.js';

/** What an op is, for the passes and devices that treat families alike (fusion, placement). */
export type OpKind =
  | 'elementwise' // one output element from the same-index (broadcast) input elements
  | 'reduction'
  | 'contraction' // matmul
  | 'layout' // moves or selects elements without arithmetic
  | 'normalization' // softmax-like: reductions and elementwise over an axis
  | 'random'
  | 'source' // constants and placeholders
  | 'state' // variables and assignment
  | 'control'; // cond and while: structured control flow over nested regions

export interface ConcreteType {
  readonly dtype: DType;
  readonly shape: ConcreteShape;
}

/** An estimate the placer can weigh: arithmetic and memory traffic, for concrete shapes. */
export interface Cost {
  readonly flops: number;
  readonly bytes: number;
}

/**
 * How to fill one input of a conformance case. `normal` draws from N(0, 1) (ints round it, times
 * ten); `positive` from (0.1, 4); `special` mixes in NaN, infinities, zeros and huge values; `range`
 * draws integers in [lo, hi].
 */
export type ValueDomain = 'normal' | 'positive' | 'special' | { readonly range: readonly [number, number] };

export interface ConformanceInput {
  readonly dtype: DType;
  readonly shape: ConcreteShape;
  readonly domain?: ValueDomain;
}

export interface ConformanceCase<A> {
  readonly inputs: readonly ConformanceInput[];
  readonly attrs: A;
}

/** What a gradient rule receives: the node's attributes, inputs, outputs and output cotangents. */
export interface VjpArgs<A, T> {
  readonly attrs: A;
  readonly inputs: readonly T[];
  readonly outputs: readonly T[];
  /** One per output; autodiff passes zeros for outputs nothing depends on. */
  readonly cotangents: readonly T[];
}

/**
 * An op's reverse-mode rule (vector-Jacobian product): the cotangents of its inputs, built with the
 * functional op API so the same rule serves symbolic graphs and traces; null for an input that
 * takes none (an index, a shape operand). Autodiff applies it as a graph transformation.
 */
export type VjpRule<A> = <T extends TensorHandle>(args: VjpArgs<A, T>) => readonly (T | null)[];

/** An op with no gradient, and why (integer-valued, a comparison, random, state, ...). */
export interface NotDifferentiable {
  readonly none: string;
}

/** Ops with regions (cond, while): the autodiff transform differentiates their regions itself. */
export interface DifferentiatedByTransform {
  readonly byTransform: string;
}

export type GradientRule<A> = VjpRule<A> | NotDifferentiable | DifferentiatedByTransform;

/** What a decomposition rule receives: the node's attributes and inputs. */
export interface DecomposeArgs<A, T> {
  readonly attrs: A;
  readonly inputs: readonly T[];
}

/**
 * A composite op's meaning in other ops: its outputs built from its inputs with the functional op
 * API, as gradient rules are. A device that does not claim the op through `supports` gets these
 * ops instead (expanded again where they are composites themselves); the conformance kit checks
 * the expansion against the op's reference.
 */
export type DecomposeRule<A> = <T extends TensorHandle>(args: DecomposeArgs<A, T>) => readonly T[];

export interface OpDef<S extends AttrSchema = AttrSchema> {
  readonly name: string;
  readonly kind: OpKind;
  /** Number of inputs, or a range for variadic ops such as concat. */
  readonly arity: number | { readonly min: number; readonly max?: number };
  readonly attrs: S;
  /** Output types from input types; throws a KilnError('shape') saying what did not fit. */
  infer(inputs: readonly TensorType[], attrs: AttrsOf<S>): TensorType[];
  /** The float64 reference: simple and obviously right, used by constant folding and conformance. */
  reference(inputs: readonly RefTensor[], attrs: AttrsOf<S>): RefTensor[];
  cost(inputs: readonly ConcreteType[], outputs: readonly ConcreteType[], attrs: AttrsOf<S>): Cost;
  /** Cases the conformance kit runs against every device that claims this op. */
  cases(rng: Prng): ConformanceCase<AttrsOf<S>>[];
  /**
   * Conformance tolerance multiplier for float32 (1 = elementwise rounding). Reductions and
   * contractions accumulate rounding and state their own factor.
   */
  readonly tolerance?: (inputs: readonly ConcreteType[], attrs: AttrsOf<S>) => number;
  /** Ops whose result is not a function of their inputs alone (variables, assign). */
  readonly stateful?: boolean;
  /** The gradient, in the op's single definition: required, so a missing rule is a type error. */
  readonly gradient: GradientRule<AttrsOf<S>>;
  /**
   * Present on composites only (see `defineComposite`): how the op is built from other ops. An op
   * without one is a primitive, and every device must run it.
   */
  readonly decompose?: DecomposeRule<AttrsOf<S>>;
}

/** An op every device runs: nothing below it to fall back to. */
export type PrimitiveOpDef<S extends AttrSchema = AttrSchema> = OpDef<S> & { readonly decompose?: undefined };

/** An op defined by other ops: a device may run it directly as a fast path, or get its expansion. */
export type CompositeOpDef<S extends AttrSchema = AttrSchema> = OpDef<S> & {
  readonly decompose: DecomposeRule<AttrsOf<S>>;
};

export type AnyOpDef = OpDef<AttrSchema>;
export type { AttrsInput, AttrsOf };

/**
 * Keeps the schema's precise type while checking the definition against OpDef. Every op's inferred
 * results are checked against the size a tensor may have here, once for all ops: a graph asking
 * for a 2^31 x 2^31 broadcast fails when it is built or loaded, not when a device allocates.
 */
export function defineOp<S extends AttrSchema>(def: OpDef<S>): PrimitiveOpDef<S> {
  // A primitive's definition has no `decompose` key; the type records that for the op table.
  return checkedInference(def) as PrimitiveOpDef<S>;
}

/** A composite: an op with a decomposition rule (see DecomposeRule). */
export function defineComposite<S extends AttrSchema>(
  def: OpDef<S> & { readonly decompose: DecomposeRule<AttrsOf<S>> },
): CompositeOpDef<S> {
  return { ...checkedInference(def), decompose: def.decompose };
}

/** An op defined by a shared helper (the unary and binary families) made a composite. */
export function composite<S extends AttrSchema>(
  def: OpDef<S>,
  decompose: DecomposeRule<AttrsOf<S>>,
): CompositeOpDef<S> {
  return { ...def, decompose };
}

function checkedInference<S extends AttrSchema>(def: OpDef<S>): OpDef<S> {
  return {
    ...def,
    infer(inputs, attrs) {
      const types = def.infer(inputs, attrs);
      for (const t of types) assertTensorFits(t, def.name);
      return types;
    },
  };
}

export const elementBytes = (types: readonly ConcreteType[]): number =>
  types.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'bool' ? 1 : 4), 0);

/** Cost of an op that does `flopsPerElement` per output element and touches every byte once. */
export const streamingCost =
  (flopsPerElement: number) =>
  (inputs: readonly ConcreteType[], outputs: readonly ConcreteType[]): Cost => ({
    flops: flopsPerElement * outputs.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
    bytes: elementBytes(inputs) + elementBytes(outputs),
  });
