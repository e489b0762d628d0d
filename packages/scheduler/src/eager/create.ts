import type { ConcreteShape, DType, NestedArray, OpContext, TensorHandle } from '@kiln/ir';
import * as ir from '@kiln/ir';
import type { Tensor } from './tensor.js';

/**
 * The creation functions of @kiln/ir, typed for eager use: without a graph argument they make
 * `Tensor`s on the default device (PyTorch's `torch.tensor`); with one they add to that graph.
 */
type Values = NestedArray | ArrayLike<number>;
type Uniform = ir.RandomOptions & { low?: number; high?: number };
type Normal = ir.RandomOptions & { mean?: number; stddev?: number };

export function tensor(values: Values, shape?: ConcreteShape, dtype?: DType, name?: string): Tensor;
export function tensor<T extends TensorHandle>(
  ctx: OpContext<T>,
  values: Values,
  shape?: ConcreteShape,
  dtype?: DType,
  name?: string,
): T;
export function tensor(...args: unknown[]): unknown {
  return (ir.tensor as (...a: unknown[]) => unknown)(...args);
}

export function zeros(shape: ConcreteShape, dtype?: DType): Tensor;
export function zeros<T extends TensorHandle>(ctx: OpContext<T>, shape: ConcreteShape, dtype?: DType): T;
export function zeros(...args: unknown[]): unknown {
  return (ir.zeros as (...a: unknown[]) => unknown)(...args);
}

export function ones(shape: ConcreteShape, dtype?: DType): Tensor;
export function ones<T extends TensorHandle>(ctx: OpContext<T>, shape: ConcreteShape, dtype?: DType): T;
export function ones(...args: unknown[]): unknown {
  return (ir.ones as (...a: unknown[]) => unknown)(...args);
}

export function randomUniform(shape: ConcreteShape, options: Uniform): Tensor;
export function randomUniform<T extends TensorHandle>(
  ctx: OpContext<T>,
  shape: ConcreteShape,
  options: Uniform & { offset?: T },
): T;
export function randomUniform(...args: unknown[]): unknown {
  return (ir.randomUniform as (...a: unknown[]) => unknown)(...args);
}

export function randomNormal(shape: ConcreteShape, options: Normal): Tensor;
export function randomNormal<T extends TensorHandle>(
  ctx: OpContext<T>,
  shape: ConcreteShape,
  options: Normal & { offset?: T },
): T;
export function randomNormal(...args: unknown[]): unknown {
  return (ir.randomNormal as (...a: unknown[]) => unknown)(...args);
}
