import { attr } from '../attrs.js';
import { KilnError, shapeError } from '../errors.js';
import { refTensor } from '../ref-tensor.js';
import { formatType, shapesEqual } from '../shape.js';
import { caseShapes } from './case-shapes.js';
import { defineOp, streamingCost } from './op-def.js';

/**
 * Sources and state. `constant` is an ordinary kernel; `placeholder`, `variable` and `assign` are
 * never handed to a device: the executor binds placeholders to feeds and turns variables into
 * inputs and assigns into outputs of the compiled subgraph, so kernels stay pure functions.
 */
export const constant = defineOp({
  name: 'constant',
  kind: 'source',
  arity: 0,
  attrs: { value: attr.tensor },
  infer: (_, { value }) => [{ dtype: value.dtype, shape: value.shape }],
  reference: (_, { value }) => [refTensor(value.dtype, value.shape, value.data)],
  gradient: { none: 'a constant' },
  cost: streamingCost(0),
  cases(rng) {
    return caseShapes(rng, 6).map((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, () => rng.normal());
      return { inputs: [], attrs: { value: { dtype: 'float32' as const, shape, data } } };
    });
  },
});

const bindOnly = (op: string) => () => {
  throw new KilnError('runtime', `${op} has no kernel: the executor binds it before anything runs`);
};

export const placeholder = defineOp({
  name: 'placeholder',
  kind: 'source',
  arity: 0,
  attrs: { name: attr.string, dtype: attr.dtype, shape: attr.shape },
  infer: (_, { dtype, shape }) => [{ dtype, shape }],
  reference: bindOnly('placeholder'),
  gradient: { none: 'an input: autodiff differentiates with respect to it, not through it' },
  cost: streamingCost(0),
  cases: () => [],
});

export const variable = defineOp({
  name: 'variable',
  kind: 'state',
  arity: 0,
  attrs: { name: attr.string, dtype: attr.dtype, shape: attr.concreteShape },
  infer: (_, { dtype, shape }) => [{ dtype, shape }],
  reference: bindOnly('variable'),
  gradient: { none: 'state: autodiff differentiates with respect to it, not through it' },
  cost: streamingCost(0),
  cases: () => [],
  stateful: true,
});

/** assign(value) stores `value` into the named variable and yields it. */
export const assign = defineOp({
  name: 'assign',
  kind: 'state',
  arity: 1,
  attrs: { variable: attr.string, dtype: attr.dtype, shape: attr.concreteShape },
  infer([x], a) {
    if (x!.dtype !== a.dtype || !shapesEqual(x!.shape, a.shape)) {
      throw shapeError(
        `assign to '${a.variable}': value ${formatType(x!)} does not match the variable's ${formatType(a)}`,
      );
    }
    return [{ dtype: a.dtype, shape: a.shape }];
  },
  reference: bindOnly('assign'),
  gradient: { none: 'a side effect' },
  cost: streamingCost(0),
  cases: () => [],
  stateful: true,
});
