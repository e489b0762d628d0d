import * as api from '../api/ops.js';

/**
 * What a script can call. Ops are the functional API of api/ops.ts, looked up by name, so an op
 * added there is callable from scripts (as `add(x, y)`, `k.add(x, y)` or `x.add(y)`) with nothing
 * to change here.
 */
type OpFunction = (...args: unknown[]) => unknown;

/** Exports of api/ops.ts that are not ops on tensors: they take a graph or device context. */
const NOT_TENSOR_OPS: ReadonlySet<string> = new Set(['apply', 'randomUniform', 'randomNormal', 'tensor']);

export const OP_FUNCTIONS: ReadonlyMap<string, OpFunction> = new Map(
  Object.entries(api)
    .filter(([name, f]) => typeof f === 'function' && !NOT_TENSOR_OPS.has(name))
    .map(([name, f]) => [name, f as OpFunction]),
);

/** Functions of the API a script cannot call, with the reason. */
export const UNSCRIPTABLE: Readonly<Record<string, string>> = {
  apply: "'apply' is not supported in script; call the op by name",
  randomUniform: "'randomUniform' needs a graph or device; draw the numbers outside and capture the tensor",
  randomNormal: "'randomNormal' needs a graph or device; draw the numbers outside and capture the tensor",
  tensor: "'tensor' needs a graph or device; build the tensor outside and capture it",
};

/** Math constants, folded at lowering time. */
export const MATH_CONSTANTS: ReadonlyMap<string, number> = new Map(
  (['E', 'LN10', 'LN2', 'LOG10E', 'LOG2E', 'PI', 'SQRT1_2', 'SQRT2'] as const).map((k) => [k, Math[k]]),
);

/** Math functions on plain numbers, folded at lowering time. */
export const MATH_FUNCTIONS: ReadonlyMap<string, (...xs: number[]) => number> = new Map(
  (
    [
      'abs',
      'acos',
      'acosh',
      'asin',
      'asinh',
      'atan',
      'atan2',
      'atanh',
      'cbrt',
      'ceil',
      'cos',
      'cosh',
      'exp',
      'expm1',
      'floor',
      'fround',
      'hypot',
      'log',
      'log10',
      'log1p',
      'log2',
      'max',
      'min',
      'pow',
      'round',
      'sign',
      'sin',
      'sinh',
      'sqrt',
      'tan',
      'tanh',
      'trunc',
    ] as const
  ).map((k) => [k, Math[k] as (...xs: number[]) => number]),
);

/**
 * Math functions on numbers read from tensors, and the op each lowers to. Math.round is left out:
 * it rounds halves up, the `round` op to even.
 */
export const MATH_OPS: ReadonlyMap<string, string> = new Map([
  ['abs', 'abs'],
  ['ceil', 'ceil'],
  ['cos', 'cos'],
  ['exp', 'exp'],
  ['floor', 'floor'],
  ['log', 'log'],
  ['sign', 'sign'],
  ['sin', 'sin'],
  ['sqrt', 'sqrt'],
  ['tanh', 'tanh'],
  ['max', 'maximum'],
  ['min', 'minimum'],
  ['pow', 'pow'],
]);

/**
 * Globals that are not namespaces of kiln ops: `console.log(x)` must not lower to the `log` op.
 * Any other unbound identifier before a dot is taken for a module namespace (`kiln.add`, or a
 * bundler's rewrite of an import).
 */
export const NOT_NAMESPACES: ReadonlySet<string> = new Set([
  'console',
  'JSON',
  'Object',
  'Array',
  'Number',
  'String',
  'Boolean',
  'Symbol',
  'BigInt',
  'Promise',
  'Reflect',
  'Proxy',
  'Date',
  'RegExp',
  'Map',
  'Set',
  'WeakMap',
  'WeakSet',
  'Intl',
  'Atomics',
  'globalThis',
  'window',
  'self',
  'global',
  'process',
  'performance',
  'crypto',
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Float32Array',
  'Float64Array',
  'Int32Array',
  'Uint8Array',
  'Error',
  'Function',
]);
