import type { Prng } from '../prng.js';

/**
 * Values of every type msgpack (and msgpackr's extensions) can carry, with the boundary cases of
 * each: where a decoder expects one type, type confusion puts one of the others.
 */
export type MsgpackType =
  | 'nil'
  | 'bool'
  | 'uint'
  | 'negative'
  | 'float'
  | 'huge int'
  | 'str'
  | 'bin'
  | 'array'
  | 'map'
  | 'typed array'
  | 'ext';

/** The msgpack type a decoded value came from (as far as JS can tell). */
export function msgpackTypeOf(x: unknown): MsgpackType {
  if (x === null || x === undefined) return 'nil';
  if (typeof x === 'boolean') return 'bool';
  if (typeof x === 'bigint') return 'huge int';
  if (typeof x === 'number') {
    if (!Number.isInteger(x) || Object.is(x, -0)) return 'float';
    if (!Number.isSafeInteger(x)) return 'huge int';
    return x >= 0 ? 'uint' : 'negative';
  }
  if (typeof x === 'string') return 'str';
  if (Array.isArray(x)) return 'array';
  if (x instanceof Uint8Array && x.constructor !== Uint8ClampedArray) return 'bin';
  if (ArrayBuffer.isView(x)) return 'typed array';
  if (typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) return 'map';
  return 'ext';
}

const POOL: Readonly<Record<MsgpackType, (rng: Prng) => unknown>> = {
  nil: (rng) => rng.pick([null, undefined]),
  bool: (rng) => rng.bool(),
  uint: (rng) =>
    rng.pick([0, 1, 2, 3, 15, 16, 127, 128, 255, 256, 65_535, 65_536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]),
  negative: (rng) => rng.pick([-1, -2, -32, -33, -128, -129, -32_768, -(2 ** 31), -(2 ** 53) + 1]),
  float: (rng) => rng.pick([0.5, 1.5, -0, Number.NaN, Infinity, -Infinity, 1e300, 5e-324, -2.5, 3.4e38]),
  'huge int': (rng) =>
    rng.pick<unknown>([2 ** 53, 2 ** 64, -(2 ** 63), 2n ** 63n, 2n ** 64n - 1n, -(2n ** 63n)]),
  str: (rng) =>
    rng.pick([
      '',
      'x',
      '0',
      '-1',
      'float32',
      'int32',
      'bool',
      '__proto__',
      'constructor',
      'toString',
      '\u{1f525}',
      '\ud800',
      'a'.repeat(300),
      'b'.repeat(70_000),
    ]),
  bin: (rng) => new Uint8Array(rng.pick([0, 1, 3, 4, 7, 16])).map(() => rng.int(0, 255)),
  array: (rng) =>
    rng.pick<() => unknown>([
      () => [],
      () => [null],
      () => [0],
      () => [-1],
      () => [[]],
      () => ['a', 1],
      () => [1, 2, 3],
      () => Array.from({ length: rng.int(0, 20) }, () => rng.int(-2, 40)),
    ])(),
  map: (rng) =>
    rng.pick<() => unknown>([
      () => ({}),
      () => ({ a: 1 }),
      () => ({ '': null }),
      () => ({ length: 5 }),
      () => ({ 0: 'x' }),
      // A msgpack map whose keys are not strings: an array key, nil, a float.
      () =>
        new Map<unknown, unknown>([
          [[1, 2], 'x'],
          [null, 1],
        ]),
      () => new Map<unknown, unknown>([[1.5, 'y']]),
    ])(),
  'typed array': (rng) =>
    rng.pick<() => unknown>([
      () => new Float32Array(3),
      () => new Int32Array(2),
      () => new Float64Array([-0]),
      () => new Float64Array(2),
      () => new Uint16Array(2),
      () => new Int8Array(1),
      () => new BigInt64Array(1),
      () => new Uint8ClampedArray(2),
    ])(),
  ext: (rng) =>
    rng.pick<() => unknown>([
      () => new Date(0),
      () => new Date(Number.NaN),
      () => new Set([1]),
      () => /x/g,
      () => new Error('e'),
    ])(),
};

const TYPES = Object.keys(POOL) as MsgpackType[];

/** A value of a msgpack type other than `current`'s. */
export function confusingValue(rng: Prng, current: unknown): unknown {
  const own = msgpackTypeOf(current);
  const type = rng.pick(TYPES.filter((t) => t !== own));
  return POOL[type](rng);
}

/** A value of any msgpack type. */
export function anyValue(rng: Prng): unknown {
  return POOL[rng.pick(TYPES)](rng);
}
