import { attr } from '../attrs.js';
import type { DType } from '../dtype.js';
import { roundFloat32 } from '../dtype.js';
import { shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { refTensor } from '../ref-tensor.js';
import { type ConcreteShape, formatType, sizeOf, type TensorType } from '../shape.js';
import { caseShapes } from './case-shapes.js';
import { defineOp, streamingCost } from './op-def.js';
import { bitsToUnit, threefry2x32 } from './threefry.js';

/**
 * Random ops are pure functions of (seed, counter): element i of the output draws from threefry
 * with key (seed, 0) and counter (i, counter + offset), where `offset` is an optional int32 scalar
 * input. So a variable initialised with seed 7 is the same tensor on every device, and a training
 * step can feed its step number as the offset to get fresh noise each step.
 */
const randomAttrs = {
  shape: attr.concreteShape,
  seed: attr.int,
  counter: attr.int.default(0),
  dtype: attr.dtype.default('float32'),
};

function inferRandom(name: string) {
  return (
    inputs: readonly TensorType[],
    a: { readonly shape: ConcreteShape; readonly dtype: DType },
  ): TensorType[] => {
    const offset = inputs[0];
    if (offset && (offset.dtype !== 'int32' || offset.shape.length !== 0)) {
      throw shapeError(`${name}: the counter offset has type ${formatType(offset)}; need an int32 scalar`);
    }
    if (a.dtype !== 'float32') throw shapeError(`${name}: dtype ${a.dtype} is not supported; use float32`);
    return [{ dtype: 'float32', shape: a.shape }];
  };
}

/** Calls `draw(i, word0, word1)` for each element. */
function generate(
  n: number,
  seed: number,
  counter: number,
  draw: (i: number, w0: number, w1: number) => void,
) {
  const words = new Uint32Array(2);
  for (let i = 0; i < n; i++) {
    threefry2x32(seed, 0, i, counter, words);
    draw(i, words[0]!, words[1]!);
  }
}

const randomCases = (rng: Prng) =>
  caseShapes(rng, 8).map((shape, c) => ({
    inputs: c % 2 ? [{ dtype: 'int32' as const, shape: [], domain: { range: [0, 1000] as const } }] : [],
    attrs: { shape, seed: rng.int(-1000, 1000), counter: rng.int(0, 5), dtype: 'float32' as const },
  }));

export const randomUniform = defineOp({
  name: 'randomUniform',
  kind: 'random',
  arity: { min: 0, max: 1 },
  attrs: { ...randomAttrs, low: attr.float.default(0), high: attr.float.default(1) },
  infer: inferRandom('randomUniform'),
  reference(inputs, a) {
    const out = refTensor('float32', a.shape);
    const counter = (a.counter + (inputs[0]?.data[0] ?? 0)) | 0;
    generate(sizeOf(a.shape), a.seed, counter, (i, w0) => {
      out.data[i] = roundFloat32(a.low + (a.high - a.low) * bitsToUnit(w0));
    });
    return [out];
  },
  cost: streamingCost(30),
  gradient: { none: 'random draws' },
  cases: (rng) =>
    randomCases(rng).map((c) => ({
      ...c,
      attrs: { ...c.attrs, low: rng.pick([0, -2]), high: rng.pick([1, 3]) },
    })),
});

export const randomNormal = defineOp({
  name: 'randomNormal',
  kind: 'random',
  arity: { min: 0, max: 1 },
  attrs: { ...randomAttrs, mean: attr.float.default(0), stddev: attr.float.default(1) },
  infer: inferRandom('randomNormal'),
  reference(inputs, a) {
    const out = refTensor('float32', a.shape);
    const counter = (a.counter + (inputs[0]?.data[0] ?? 0)) | 0;
    // Box-Muller on the two words: u1 in (0, 1] keeps the log finite.
    generate(sizeOf(a.shape), a.seed, counter, (i, w0, w1) => {
      const u1 = bitsToUnit(w0) + 2 ** -23;
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * bitsToUnit(w1));
      out.data[i] = roundFloat32(a.mean + a.stddev * z);
    });
    return [out];
  },
  cost: streamingCost(60),
  gradient: { none: 'random draws' },
  cases: (rng) =>
    randomCases(rng).map((c) => ({
      ...c,
      attrs: { ...c.attrs, mean: rng.pick([0, 1]), stddev: rng.pick([1, 0.5]) },
    })),
  tolerance: () => 8,
});
