import type { Prng } from '../prng.js';
import type { ConcreteShape } from '../shape.js';

/**
 * Shape generators for conformance cases. They deliberately include scalars, size-0 and size-1
 * dimensions, because those are where kernels break.
 */
export function randomShape(rng: Prng, maxRank = 4, maxDim = 5): number[] {
  const rank = rng.int(0, maxRank);
  return Array.from({ length: rank }, () => (rng.bool(0.08) ? 0 : rng.bool(0.2) ? 1 : rng.int(2, maxDim)));
}

/** A shape that broadcasts against `shape`: leading dims dropped, some dims set to 1. */
export function broadcastPartner(rng: Prng, shape: ConcreteShape): number[] {
  const drop = rng.int(0, shape.length);
  return shape.slice(drop).map((d) => (rng.bool(0.3) ? 1 : d));
}

/** A fixed handful of shapes every op family is tried on, plus random ones. */
export function caseShapes(rng: Prng, count: number): number[][] {
  const fixed = [[], [1], [0], [7], [3, 1], [2, 0, 3], [4, 5], [2, 3, 4]];
  const out = fixed.map((s) => [...s]);
  while (out.length < count) out.push(randomShape(rng));
  return out;
}
