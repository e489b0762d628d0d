import type { DType } from '../dtype.js';
import type { ELEMENTWISE_OPS } from '../ops/elementwise.js';
import type { ConcreteShape, Shape } from '../shape.js';
import type { OpContext, TensorHandle } from './handle.js';
import * as k from './ops.js';

type Like<T extends TensorHandle> = k.TensorLike<T>;

/**
 * The ops every tensor has a method for: every elementwise op but `where` (whose first operand is
 * the condition), the reductions, matmul, the single-tensor layout ops and softmax. Derived from
 * the op table, so an elementwise op added without a method is a compile error.
 */
type MethodOpName =
  | Exclude<keyof typeof ELEMENTWISE_OPS, 'where'>
  | 'sum'
  | 'prod'
  | 'mean'
  | 'max'
  | 'min'
  | 'argmax'
  | 'argmin'
  | 'matmul'
  | 'reshape'
  | 'transpose'
  | 'broadcastTo'
  | 'slice'
  | 'pad'
  | 'gather'
  | 'oneHot'
  | 'softmax'
  | 'logSoftmax';
type OpMethods = { readonly [K in MethodOpName]: (...args: never[]) => unknown };

/**
 * Method-call sugar shared by every kind of tensor (symbolic, eager, traced):
 * `x.matmul(w).add(b).relu()` is `relu(add(matmul(x, w), b))`. Each method is the functional op
 * of the same name, so `script` can read either spelling.
 */
export abstract class TensorMethods implements TensorHandle, OpMethods {
  abstract readonly dtype: DType;
  abstract readonly shape: Shape;
  abstract readonly context: OpContext;

  get rank(): number {
    return this.shape.length;
  }

  // <generated elementwise methods>
  neg(): this {
    return k.neg(this);
  }
  abs(): this {
    return k.abs(this);
  }
  sign(): this {
    return k.sign(this);
  }
  exp(): this {
    return k.exp(this);
  }
  log(): this {
    return k.log(this);
  }
  sqrt(): this {
    return k.sqrt(this);
  }
  rsqrt(): this {
    return k.rsqrt(this);
  }
  square(): this {
    return k.square(this);
  }
  reciprocal(): this {
    return k.reciprocal(this);
  }
  tanh(): this {
    return k.tanh(this);
  }
  sigmoid(): this {
    return k.sigmoid(this);
  }
  relu(): this {
    return k.relu(this);
  }
  sin(): this {
    return k.sin(this);
  }
  cos(): this {
    return k.cos(this);
  }
  floor(): this {
    return k.floor(this);
  }
  ceil(): this {
    return k.ceil(this);
  }
  round(): this {
    return k.round(this);
  }
  isNaN(): this {
    return k.isNaN(this);
  }
  logicalNot(): this {
    return k.logicalNot(this);
  }

  add(other: Like<this>): this {
    return k.add<this>(this, other);
  }
  sub(other: Like<this>): this {
    return k.sub<this>(this, other);
  }
  mul(other: Like<this>): this {
    return k.mul<this>(this, other);
  }
  div(other: Like<this>): this {
    return k.div<this>(this, other);
  }
  pow(other: Like<this>): this {
    return k.pow<this>(this, other);
  }
  maximum(other: Like<this>): this {
    return k.maximum<this>(this, other);
  }
  minimum(other: Like<this>): this {
    return k.minimum<this>(this, other);
  }
  equal(other: Like<this>): this {
    return k.equal<this>(this, other);
  }
  notEqual(other: Like<this>): this {
    return k.notEqual<this>(this, other);
  }
  less(other: Like<this>): this {
    return k.less<this>(this, other);
  }
  lessEqual(other: Like<this>): this {
    return k.lessEqual<this>(this, other);
  }
  greater(other: Like<this>): this {
    return k.greater<this>(this, other);
  }
  greaterEqual(other: Like<this>): this {
    return k.greaterEqual<this>(this, other);
  }
  logicalAnd(other: Like<this>): this {
    return k.logicalAnd<this>(this, other);
  }
  logicalOr(other: Like<this>): this {
    return k.logicalOr<this>(this, other);
  }
  logicalXor(other: Like<this>): this {
    return k.logicalXor<this>(this, other);
  }
  // </generated elementwise methods>

  cast(dtype: DType): this {
    return k.cast(this, dtype);
  }
  sum(axes?: number | readonly number[] | null, options?: k.ReduceOptions): this {
    return k.sum(this, axes, options);
  }
  prod(axes?: number | readonly number[] | null, options?: k.ReduceOptions): this {
    return k.prod(this, axes, options);
  }
  mean(axes?: number | readonly number[] | null, options?: k.ReduceOptions): this {
    return k.mean(this, axes, options);
  }
  max(axes?: number | readonly number[] | null, options?: k.ReduceOptions): this {
    return k.max(this, axes, options);
  }
  min(axes?: number | readonly number[] | null, options?: k.ReduceOptions): this {
    return k.min(this, axes, options);
  }
  argmax(axis?: number, options?: k.ReduceOptions): this {
    return k.argmax(this, axis, options);
  }
  argmin(axis?: number, options?: k.ReduceOptions): this {
    return k.argmin(this, axis, options);
  }
  matmul(other: this, options?: k.MatmulOptions): this {
    return k.matmul(this, other, options);
  }
  reshape(shape: readonly number[]): this {
    return k.reshape(this, shape);
  }
  transpose(perm: readonly number[] | null = null): this {
    return k.transpose(this, perm);
  }
  broadcastTo(shape: ConcreteShape): this {
    return k.broadcastTo(this, shape);
  }
  slice(begin: readonly number[], size: readonly number[]): this {
    return k.slice(this, begin, size);
  }
  pad(paddings: readonly (readonly [number, number])[], value = 0): this {
    return k.pad(this, paddings, value);
  }
  gather(indices: this, axis = 0): this {
    return k.gather(this, indices, axis);
  }
  oneHot(depth: number, options?: k.OneHotOptions): this {
    return k.oneHot(this, depth, options);
  }
  softmax(axis = -1): this {
    return k.softmax(this, axis);
  }
  logSoftmax(axis = -1): this {
    return k.logSoftmax(this, axis);
  }
}
