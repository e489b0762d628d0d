import type { KernelFn } from '@kiln/ir';

/**
 * Tiny elementwise ops in JavaScript. A call into the addon costs about 0.4 µs however little it
 * does, as much as the rest of an eager op's dispatch, so an op over a few float32 values runs here
 * instead, synchronously, as the issue asks of tiny eager ops. Only the ops that IEEE 754 rounds
 * exactly (add, subtract, multiply, divide, negate): computed in double and stored to a float32
 * array they give the bits the native loop gives, so where an op runs never shows in its result.
 */
export const TINY_ELEMENTS = 16;

const BINARY: Readonly<Record<string, (a: number, b: number) => number>> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};
const UNARY: Readonly<Record<string, (a: number) => number>> = { neg: (a) => -a };

/**
 * The op over float32 inputs read through their strides over `shape` (as broadcastLayout gives
 * them, input after input), if it is one of the exactly rounded ones; otherwise undefined.
 */
export function tinyKernel(op: string, shape: Float64Array, strides: Float64Array): KernelFn | undefined {
  const rank = shape.length;
  const offsetOf = (input: number, o: number) => {
    let at = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const n = shape[d]!;
      at += (o % n) * strides[input * rank + d]!;
      o = Math.floor(o / n);
    }
    return at;
  };
  const binary = BINARY[op];
  if (binary)
    return ([a, b], [out]) => {
      for (let o = 0; o < out!.length; o++) out![o] = binary(a![offsetOf(0, o)]!, b![offsetOf(1, o)]!);
    };
  const unary = UNARY[op];
  if (unary)
    return ([a], [out]) => {
      for (let o = 0; o < out!.length; o++) out![o] = unary(a![offsetOf(0, o)]!);
    };
  return undefined;
}
