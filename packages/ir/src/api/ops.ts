import type { TensorValue } from '../attrs.js';
import { DTYPE_INFO, type DType, type HostArray } from '../dtype.js';
import { invalidArgument } from '../errors.js';
import { HostTensor, type NestedArray } from '../host-tensor.js';
import type { OpName } from '../ops/index.js';
import { type ConcreteShape, checkedShape, sizeOf } from '../shape.js';
import { defaultContext, isOpContext } from './default-context.js';
import { isTensorHandle, type OpContext, type TensorHandle } from './handle.js';
import { atLocation } from './source-location.js';

/**
 * The functional op API: `add(a, b)`, `matmul(x, w)`, ... Written once for every kind of tensor:
 * each call goes to the context of the tensors it receives (a symbolic graph today). Plain numbers
 * become constants of the other operand's dtype.
 */
export type TensorLike<T extends TensorHandle> = T | number | boolean;

function contextOf(args: readonly unknown[], op: string): OpContext {
  let ctx: OpContext | undefined;
  for (const a of args) {
    if (!isTensorHandle(a)) continue;
    const c = a.context;
    if (!ctx || c.level > ctx.level) ctx = c;
    else if (c !== ctx && c.level === ctx.level) {
      throw invalidArgument(`${op}: ${placesOf(args, op)}${atLocation()}`);
    }
  }
  if (!ctx) throw invalidArgument(`${op}: at least one input must be a tensor`);
  return ctx;
}

/** Brings every input into `ctx`: numbers become constants, lower-level tensors are lifted. */
function lift(ctx: OpContext, x: TensorLike<TensorHandle>, dtype: DType, op: string): TensorHandle {
  if (!isTensorHandle(x)) {
    // Checked, never converted: `add(x, '2')` must not quietly become a NaN.
    if (typeof x !== 'number' && typeof x !== 'boolean')
      throw invalidArgument(
        `${op}: an operand is ${describeOperand(x)}; pass a tensor, a number or a boolean`,
      );
    return scalar(ctx, x, typeof x === 'boolean' ? 'bool' : dtype);
  }
  if (x.context === ctx) return x;
  if (!ctx.lift) throw invalidArgument(`${op}: a tensor from another graph or device cannot be used here`);
  return ctx.lift(x);
}

/** Where mixed inputs live, and how to bring them together: the error for mixing devices. */
function placesOf(args: readonly unknown[], op: string): string {
  const where = (h: TensorHandle) => {
    const device = (h as { device?: unknown }).device;
    return typeof device === 'string' ? `device ${device}` : 'a graph';
  };
  const places = [...new Set(args.filter(isTensorHandle).map(where))];
  if (places.every((p) => p.startsWith('device')))
    return `inputs are on different devices (${places.join(' and ')}); move one first: await t.to(context) or t.toSync(context), where context is the EagerContext of the other device`;
  return `inputs come from different graphs (${places.join(', ')}); build ${op} in one graph`;
}

function describeOperand(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x === 'object') return `a ${x.constructor?.name ?? 'object'}`;
  return `a ${typeof x}`;
}

function scalar(ctx: OpContext, x: number | boolean, dtype: DType): TensorHandle {
  const data =
    dtype === 'float32'
      ? new Float32Array([Number(x)])
      : dtype === 'int32'
        ? new Int32Array([Number(x)])
        : new Uint8Array([x ? 1 : 0]);
  return ctx.constant({ dtype, shape: [], data });
}

/** The attributes of an op called without any: one object for every such call. */
const NO_ATTRS: Readonly<Record<string, unknown>> = Object.freeze({});

/** Whether every input is already a tensor of `ctx` (the usual case: nothing to lift). */
function allIn(ctx: OpContext, inputs: readonly unknown[]): inputs is readonly TensorHandle[] {
  for (const x of inputs) if (!isTensorHandle(x) || x.context !== ctx) return false;
  return true;
}

/** Applies a single-output op; numbers among the inputs take the dtype of the first tensor. */
export function apply<T extends TensorHandle>(
  op: OpName,
  inputs: readonly TensorLike<T>[],
  attrs: Readonly<Record<string, unknown>> = NO_ATTRS,
  name?: string,
): T {
  const ctx = contextOf(inputs, op);
  if (allIn(ctx, inputs)) return ctx.apply(op, inputs, attrs, name)[0] as T;
  const dtype = (inputs.find(isTensorHandle) as TensorHandle).dtype;
  const handles = inputs.map((x) => lift(ctx, x, dtype, op));
  return ctx.apply(op, handles, attrs, name)[0] as T;
}

// Spelled-out types: op definitions use these functions in their gradient rules, so their types
// must not be inferred from the op table.
type UnaryFn = <T extends TensorHandle>(x: T, name?: string) => T;
type BinaryFn = <T extends TensorHandle>(a: TensorLike<T>, b: TensorLike<T>, name?: string) => T;
type ReduceFn = <T extends TensorHandle>(x: T, axes?: Axes, options?: ReduceOptions) => T;

const unary =
  (op: OpName): UnaryFn =>
  (x, name) =>
    apply(op, [x], NO_ATTRS, name);
const binary =
  (op: OpName): BinaryFn =>
  (a, b, name) =>
    apply(op, [a, b], NO_ATTRS, name);

// <generated elementwise functions>
export const neg = unary('neg');
export const abs = unary('abs');
export const sign = unary('sign');
export const exp = unary('exp');
export const log = unary('log');
export const sqrt = unary('sqrt');
export const rsqrt = unary('rsqrt');
export const square = unary('square');
export const reciprocal = unary('reciprocal');
export const tanh = unary('tanh');
export const sigmoid = unary('sigmoid');
export const relu = unary('relu');
export const sin = unary('sin');
export const cos = unary('cos');
export const floor = unary('floor');
export const ceil = unary('ceil');
export const round = unary('round');
// biome-ignore lint/suspicious/noShadowRestrictedNames: the op's name, as in tf.isNaN; import it qualified if that clashes.
export const isNaN = unary('isNaN');
export const logicalNot = unary('logicalNot');

export const add = binary('add');
export const sub = binary('sub');
export const mul = binary('mul');
export const div = binary('div');
export const pow = binary('pow');
export const maximum = binary('maximum');
export const minimum = binary('minimum');
export const equal = binary('equal');
export const notEqual = binary('notEqual');
export const less = binary('less');
export const lessEqual = binary('lessEqual');
export const greater = binary('greater');
export const greaterEqual = binary('greaterEqual');
export const logicalAnd = binary('logicalAnd');
export const logicalOr = binary('logicalOr');
export const logicalXor = binary('logicalXor');
// </generated elementwise functions>

export const where = <T extends TensorHandle>(
  cond: T,
  a: TensorLike<T>,
  b: TensorLike<T>,
  name?: string,
): T => {
  const ctx = contextOf([cond, a, b], 'where');
  const branch = [a, b].find(isTensorHandle) as TensorHandle | undefined;
  const dtype = branch?.dtype ?? 'float32';
  return ctx.apply(
    'where',
    [lift(ctx, cond, 'bool', 'where'), lift(ctx, a, dtype, 'where'), lift(ctx, b, dtype, 'where')],
    {},
    name,
  )[0] as T;
};
export const cast = <T extends TensorHandle>(x: T, dtype: DType, name?: string): T =>
  apply('cast', [x], { dtype }, name);

export interface ReduceOptions {
  readonly keepDims?: boolean;
  readonly name?: string;
}
type Axes = number | readonly number[] | null;
const reduce =
  (op: OpName): ReduceFn =>
  (x, axes = null, options = {}) =>
    apply(
      op,
      [x],
      { axes: typeof axes === 'number' ? [axes] : axes, keepDims: options.keepDims ?? false },
      options.name,
    );
export const sum = reduce('sum');
export const prod = reduce('prod');
export const mean = reduce('mean');
export const max = reduce('max');
export const min = reduce('min');
export const argmax = <T extends TensorHandle>(x: T, axis = -1, options: ReduceOptions = {}): T =>
  apply('argmax', [x], { axis, keepDims: options.keepDims ?? false }, options.name);
export const argmin = <T extends TensorHandle>(x: T, axis = -1, options: ReduceOptions = {}): T =>
  apply('argmin', [x], { axis, keepDims: options.keepDims ?? false }, options.name);

export interface MatmulOptions {
  readonly transposeA?: boolean;
  readonly transposeB?: boolean;
  readonly name?: string;
}
export const matmul = <T extends TensorHandle>(a: T, b: T, options: MatmulOptions = {}): T =>
  apply(
    'matmul',
    [a, b],
    { transposeA: options.transposeA ?? false, transposeB: options.transposeB ?? false },
    options.name,
  );

export const reshape = <T extends TensorHandle>(x: T, shape: readonly number[], name?: string): T =>
  apply('reshape', [x], { shape }, name);
export const transpose = <T extends TensorHandle>(
  x: T,
  perm: readonly number[] | null = null,
  name?: string,
): T => apply('transpose', [x], { perm }, name);
export const broadcastTo = <T extends TensorHandle>(x: T, shape: ConcreteShape, name?: string): T =>
  apply('broadcastTo', [x], { shape }, name);
/** `size` entries of -1 run to the end of their dimension. */
export const slice = <T extends TensorHandle>(
  x: T,
  begin: readonly number[],
  size: readonly number[],
  name?: string,
): T => apply('slice', [x], { begin, size }, name);
export const concat = <T extends TensorHandle>(xs: readonly T[], axis: number, name?: string): T =>
  apply('concat', xs, { axis }, name);
export const pad = <T extends TensorHandle>(
  x: T,
  paddings: readonly (readonly [number, number])[],
  value = 0,
  name?: string,
): T => apply('pad', [x], { paddings, value }, name);
/** numpy `take`: indices outside the axis select zeros. */
export const gather = <T extends TensorHandle>(params: T, indices: T, axis = 0, name?: string): T =>
  apply('gather', [params, indices], { axis }, name);
export interface OneHotOptions {
  readonly onValue?: number;
  readonly offValue?: number;
  readonly dtype?: DType;
  readonly name?: string;
}
export const oneHot = <T extends TensorHandle>(indices: T, depth: number, options: OneHotOptions = {}): T =>
  apply(
    'oneHot',
    [indices],
    {
      depth,
      onValue: options.onValue ?? 1,
      offValue: options.offValue ?? 0,
      dtype: options.dtype ?? 'float32',
    },
    options.name,
  );
export const softmax = <T extends TensorHandle>(x: T, axis = -1, name?: string): T =>
  apply('softmax', [x], { axis }, name);
export const logSoftmax = <T extends TensorHandle>(x: T, axis = -1, name?: string): T =>
  apply('logSoftmax', [x], { axis }, name);

export interface RandomOptions {
  readonly seed: number;
  /** Added to the counter; with `offset` (an int32 scalar tensor) gives fresh numbers per step. */
  readonly counter?: number;
  readonly name?: string;
}

type Ctx<T extends TensorHandle> = OpContext<T>;

/** Splits an optional leading context off the arguments; the default context otherwise. */
function withContext<T extends TensorHandle, R extends unknown[]>(args: readonly unknown[]): [Ctx<T>, R] {
  return isOpContext(args[0])
    ? [args[0] as Ctx<T>, args.slice(1) as R]
    : [defaultContext() as Ctx<T>, args as unknown as R];
}

type UniformOptions<T> = RandomOptions & { low?: number; high?: number; offset?: T };
type NormalOptions<T> = RandomOptions & { mean?: number; stddev?: number; offset?: T };

/** Uniform in [low, high), a pure function of (seed, counter): the same on every device. */
export function randomUniform<T extends TensorHandle>(
  ctx: Ctx<T>,
  shape: ConcreteShape,
  options: UniformOptions<T>,
): T;
export function randomUniform<T extends TensorHandle>(shape: ConcreteShape, options: UniformOptions<T>): T;
export function randomUniform<T extends TensorHandle>(...args: unknown[]): T {
  const [ctx, [shape, o]] = withContext<T, [ConcreteShape, UniformOptions<T>]>(args);
  const attrs = { shape, seed: o.seed, counter: o.counter ?? 0, low: o.low ?? 0, high: o.high ?? 1 };
  return ctx.apply('randomUniform', o.offset ? [o.offset] : [], attrs, o.name)[0]!;
}

/** Normal(mean, stddev), a pure function of (seed, counter): the same on every device. */
export function randomNormal<T extends TensorHandle>(
  ctx: Ctx<T>,
  shape: ConcreteShape,
  options: NormalOptions<T>,
): T;
export function randomNormal<T extends TensorHandle>(shape: ConcreteShape, options: NormalOptions<T>): T;
export function randomNormal<T extends TensorHandle>(...args: unknown[]): T {
  const [ctx, [shape, o]] = withContext<T, [ConcreteShape, NormalOptions<T>]>(args);
  const attrs = { shape, seed: o.seed, counter: o.counter ?? 0, mean: o.mean ?? 0, stddev: o.stddev ?? 1 };
  return ctx.apply('randomNormal', o.offset ? [o.offset] : [], attrs, o.name)[0]!;
}

type Values = NestedArray | ArrayLike<number>;

/**
 * A constant tensor: `tensor([[1, 2], [3, 4]])` (shape read off the nesting) or
 * `tensor(flat, [2, 2], 'int32')`, on the default device; `tensor(g, ...)` adds it to a graph.
 */
export function tensor<T extends TensorHandle>(
  ctx: Ctx<T>,
  values: Values,
  shape?: ConcreteShape,
  dtype?: DType,
  name?: string,
): T;
export function tensor<T extends TensorHandle>(
  values: Values,
  shape?: ConcreteShape,
  dtype?: DType,
  name?: string,
): T;
export function tensor<T extends TensorHandle>(...args: unknown[]): T {
  const [ctx, [values, shape, dtype = 'float32', name]] = withContext<
    T,
    [Values, ConcreteShape | undefined, DType | undefined, string | undefined]
  >(args);
  const value =
    shape === undefined ? HostTensor.from(values as NestedArray, dtype) : flatValue(values, shape, dtype);
  return ctx.constant({ dtype: value.dtype, shape: value.shape, data: value.data }, name);
}

/**
 * Flat values as a constant's value: a typed array of the dtype is passed as it is (every context
 * copies a constant's data once, where it keeps it), anything else is checked and converted.
 */
function flatValue(values: Values, shape: ConcreteShape, dtype: DType): TensorValue {
  const same =
    (dtype === 'float32' && values instanceof Float32Array) ||
    (dtype === 'int32' && values instanceof Int32Array) ||
    (dtype === 'bool' && values instanceof Uint8Array && values.every((x) => x <= 1));
  if (same && values.length === sizeOf(checkedShape(dtype, shape, 'tensor'))) {
    return { dtype, shape: [...shape], data: values as HostArray };
  }
  return HostTensor.fromFlat(values as ArrayLike<number>, shape, dtype);
}

/**
 * Zeros of a shape, on the default device or in the graph given first: a scalar broadcast, so no
 * host array of the full size is made (an eager device fills its own memory; a graph stays small).
 */
export function zeros<T extends TensorHandle>(ctx: Ctx<T>, shape: ConcreteShape, dtype?: DType): T;
export function zeros<T extends TensorHandle>(shape: ConcreteShape, dtype?: DType): T;
export function zeros<T extends TensorHandle>(...args: unknown[]): T {
  const [ctx, [shape, dtype = 'float32']] = withContext<T, [ConcreteShape, DType | undefined]>(args);
  return filled(ctx, shape, dtype, 0);
}

function filled<T extends TensorHandle>(ctx: Ctx<T>, shape: ConcreteShape, dtype: DType, value: number): T {
  const scalar = ctx.constant({
    dtype,
    shape: [],
    data: Object.assign(DTYPE_INFO[dtype].create(1), [value]),
  });
  return ctx.apply('broadcastTo', [scalar], { shape: [...checkedShape(dtype, shape, 'zeros/ones')] })[0]!;
}

/** Ones of a shape, on the default device or in the graph given first (a scalar broadcast, as zeros). */
export function ones<T extends TensorHandle>(ctx: Ctx<T>, shape: ConcreteShape, dtype?: DType): T;
export function ones<T extends TensorHandle>(shape: ConcreteShape, dtype?: DType): T;
export function ones<T extends TensorHandle>(...args: unknown[]): T {
  const [ctx, [shape, dtype = 'float32']] = withContext<T, [ConcreteShape, DType | undefined]>(args);
  return filled(ctx, shape, dtype, 1);
}
