import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { shapeError } from '../errors.js';
import type { Prng } from '../prng.js';
import { formatType, type Shape } from '../shape.js';
import { type FusedStep, fused, fusedProgramAttr, fusedSlotDTypes, MAX_FUSED_INPUTS } from './fused.js';
import { matmul } from './matmul.js';
import {
  type CompositeOpDef,
  type ConformanceCase,
  type ConformanceInput,
  defineComposite,
  elementBytes,
} from './op-def.js';

interface FusedMatmulAttrs {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly program: readonly FusedStep[];
}

/** The epilogue as a `fused` node's attributes, over the product and `others` more inputs. */
const epilogueOf = (attrs: FusedMatmulAttrs, others: number) => ({
  program: attrs.program,
  // Slots: the product, the others, then the steps; the result is the last step.
  outputs: [others + attrs.program.length],
});

/** Whether `shape` broadcasts to `target` without growing it (an unknown dimension matches any). */
function fitsInto(shape: Shape, target: Shape): boolean {
  if (shape.length > target.length) return false;
  const pad = target.length - shape.length;
  return shape.every((d, i) => d === 1 || d === null || target[pad + i] === null || d === target[pad + i]);
}

const fusedMatmulAttrs = {
  transposeA: attr.bool.default(false),
  transposeB: attr.bool.default(false),
  program: fusedProgramAttr,
};

/**
 * A matmul and the elementwise program applied to its product (a bias, an activation, a scaling),
 * as one op: a device whose GEMM takes an epilogue (oneDNN's bias and post-ops, cuBLASLt's
 * epilogues) applies it to each block of the product while the block is in cache, and one that
 * runs the program after the product can run it over the output in place; either way the bare
 * product is never stored. The epilogue pass (`fuseMatmulEpilogues`) makes these after
 * elementwise fusion, only for a device that claims the node; every other device runs the matmul
 * and the `fused` node it was made of.
 *
 * Inputs: a and b as matmul takes them, then the epilogue's other inputs. The program reads the
 * product as slot 0 and the other inputs as slots 1, 2, ...; its last step is the result. Each
 * other input broadcasts to the product's shape, and the result has the product's shape.
 */
// The type is spelled out: the decomposition uses the functional API, whose types depend on the
// op table this definition is part of.
export const fusedMatmul: CompositeOpDef<typeof fusedMatmulAttrs> = defineComposite({
  name: 'fusedMatmul',
  kind: 'contraction',
  // a, b, and the epilogue's inputs but the product.
  arity: { min: 2, max: 1 + MAX_FUSED_INPUTS },
  attrs: fusedMatmulAttrs,
  infer([a, b, ...extras], attrs) {
    const [product] = matmul.infer([a!, b!], attrs);
    extras.forEach((e, i) => {
      if (!fitsInto(e.shape, product!.shape))
        throw shapeError(
          `fusedMatmul: input ${i + 2} (${formatType(e)}) does not broadcast to the product ${formatType(product!)}`,
        );
    });
    const dtypes = fusedSlotDTypes(epilogueOf(attrs, extras.length), [
      product!.dtype,
      ...extras.map((e) => e.dtype),
    ]);
    return [{ dtype: dtypes[dtypes.length - 1]!, shape: product!.shape }];
  },
  reference([a, b, ...extras], attrs) {
    const [product] = matmul.reference([a!, b!], attrs);
    return fused.reference([product!, ...extras], epilogueOf(attrs, extras.length));
  },
  cost(inputs, [out], attrs) {
    const [a, b, ...extras] = inputs;
    const product = { dtype: a!.dtype, shape: out!.shape };
    const mm = matmul.cost([a!, b!], [product], attrs);
    const epilogue = fused.cost([product, ...extras], [out!], epilogueOf(attrs, extras.length));
    // The product is never stored: the traffic is the operands, the other inputs and the result.
    return { flops: mm.flops + epilogue.flops, bytes: elementBytes(inputs) + elementBytes([out!]) };
  },
  tolerance: ([a], attrs) =>
    Math.max(1, a!.shape[a!.shape.length - (attrs.transposeA ? 2 : 1)]!) + 4 * attrs.program.length,
  gradient: { none: 'fusion runs after autodiff' },
  decompose: ({ attrs, inputs: [a, b, ...extras] }) => {
    const product = k.matmul(a!, b!, { transposeA: attrs.transposeA, transposeB: attrs.transposeB });
    return a!.context.apply(
      'fused',
      [product, ...extras],
      epilogueOf(attrs, extras.length),
    ) as (typeof extras)[number][];
  },
  cases: (rng) => fusedMatmulCases(rng),
});

// ---------------------------------------------------------------- conformance cases

/**
 * Epilogue ops for the cases: those whose error does not grow the product's rounding error
 * relative to their result (a division by the product, or exp of it, would need a tolerance of its
 * own), which covers the biases, activations and scalings epilogues are made of.
 */
const CASE_UNARY = ['relu', 'tanh', 'sigmoid'] as const;
const CASE_ARITHMETIC = ['add', 'sub', 'mul', 'div'] as const;
const CASE_ORDER = ['maximum', 'minimum'] as const;

function fusedMatmulCases(rng: Prng): ConformanceCase<FusedMatmulAttrs>[] {
  const cases: ConformanceCase<FusedMatmulAttrs>[] = [];
  const dims = [1, 2, 3, 5, 8, 17];
  for (let c = 0; c < 20; c++) {
    const [m, kk, n] = [rng.pick(dims), rng.pick(dims), rng.pick(dims)];
    const batch = c < 12 ? [] : [rng.int(1, 3)];
    const transposeA = rng.bool();
    const transposeB = rng.bool();
    const out = [...batch, m, n];
    // A bias along the rows, a scalar, a whole tensor, a column: the shapes epilogues read.
    const extraShapes = Array.from({ length: rng.int(1, 3) }, () => rng.pick([[n], [], out, [m, 1], [1, n]]));
    // Special values (NaN, infinities) reach the activations through the other inputs: in the
    // product itself they would make the result depend on the order of accumulation.
    const special = rng.bool(0.3);
    const inputs: ConformanceInput[] = [
      { dtype: 'float32', shape: [...batch, ...(transposeA ? [kk, m] : [m, kk])] },
      { dtype: 'float32', shape: transposeB ? [n, kk] : [kk, n] },
      ...extraShapes.map((shape) => ({
        dtype: 'float32' as const,
        shape,
        domain: special ? ('special' as const) : ('normal' as const),
      })),
    ];
    cases.push({ inputs, attrs: { transposeA, transposeB, program: chain(rng, extraShapes.length) } });
  }
  return cases;
}

/** A chain over the product (slot 0): each step applies an op to the step before and maybe an input. */
function chain(rng: Prng, extras: number): FusedStep[] {
  const steps: FusedStep[] = [];
  const length = rng.int(1, 4);
  for (let s = 0; s < length; s++) {
    const acc = s === 0 ? 0 : extras + s;
    if (rng.bool(0.4)) {
      steps.push([rng.pick(CASE_UNARY), [acc]]);
    } else {
      const other = rng.int(1, extras);
      const op = rng.bool(0.15) ? rng.pick(CASE_ORDER) : rng.pick(CASE_ARITHMETIC);
      // Mostly the product on the left, as epilogues are; sometimes on the right (never as a
      // divisor, whose rounding error the quotient would magnify).
      const swap = op !== 'div' && rng.bool(0.25);
      steps.push([op, swap ? [other, acc] : [acc, other]]);
    }
  }
  return steps;
}
