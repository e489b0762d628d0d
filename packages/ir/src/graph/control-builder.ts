import { invalidArgument, KilnError } from '../errors.js';
import type { TensorType } from '../shape.js';
import { Graph, SymbolicTensor } from './builder.js';
import { type Region, regionFromGraph } from './region.js';

/** A function that builds a region: it receives the region's arguments and returns its results. */
export type RegionFn = (...args: SymbolicTensor[]) => SymbolicTensor | readonly SymbolicTensor[];

export interface WhileOptions {
  /** Stop after this many iterations even if the condition still holds (default: no cap). */
  readonly maxIterations?: number;
  readonly name?: string;
}

function withContext(where: string, error: unknown): KilnError {
  if (error instanceof KilnError) {
    const hint = /belongs to another graph|different graphs/.test(error.message)
      ? ' (a region reads only its arguments: pass outer tensors in as operands)'
      : '';
    return new KilnError(error.code, `${where}: ${error.message}${hint}`, { cause: error });
  }
  return new KilnError('runtime', `${where}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

/**
 * Runs `fn` on a fresh child graph whose placeholders arg0, arg1, ... have `types`, and makes a
 * Region of what it returns. The child graph is separate from the outer one on purpose: a region
 * is self-contained, so using an outer tensor inside `fn` is an error that says so.
 */
export function buildRegion(types: readonly TensorType[], fn: RegionFn, where: string): Region {
  const child = new Graph();
  let results: SymbolicTensor[];
  let args: SymbolicTensor[];
  try {
    args = types.map((t, i) => child.placeholder(t.dtype, t.shape, `arg${i}`));
    const returned = fn(...args);
    results = returned instanceof SymbolicTensor ? [returned] : [...(returned as SymbolicTensor[])];
    results.forEach((r, i) => {
      if (!(r instanceof SymbolicTensor)) throw invalidArgument(`result ${i} is not a symbolic tensor`);
      if (r.graph !== child) {
        throw invalidArgument(
          `result ${i} (${r}) is not computed inside the region; a region reads only its arguments: pass outer tensors in as operands`,
        );
      }
    });
  } catch (e) {
    throw withContext(where, e);
  }
  return regionFromGraph(
    child,
    args.map((a) => a.id),
    results.map((r) => r.id),
  );
}

/**
 * `cond(pred, operands, then, else)`: the values of `thenFn(...operands)` if the bool scalar `pred`
 * holds, else those of `elseFn(...operands)`. Each branch is built once, on placeholders typed like
 * the operands, into a region of the cond node; both must return as many values, of the same
 * dtypes and ranks.
 *
 *   const [y] = cond(g, greater(sum(x), 0), [x], (x) => [relu(x)], (x) => [neg(x)]);
 */
export function cond(
  g: Graph,
  pred: SymbolicTensor,
  operands: readonly SymbolicTensor[],
  thenFn: RegionFn,
  elseFn: RegionFn,
  name?: string,
): SymbolicTensor[] {
  const label = `cond '${name ?? 'cond'}'`;
  const types = operands.map((o) => o.type);
  const thenRegion = buildRegion(types, thenFn, `${label}: then branch`);
  const elseRegion = buildRegion(types, elseFn, `${label}: else branch`);
  // biome-ignore lint/suspicious/noThenProperty: the cond op's attribute, named for its branch; never awaited.
  return g.apply('cond', [pred, ...operands], { then: thenRegion, else: elseRegion }, name);
}

/**
 * `whileLoop(init, cond, body)`: starting from `init`, replaces the carried values with
 * `bodyFn(...carried)` while `condFn(...carried)` (a bool scalar) holds, and returns the final
 * carried values. The body must return values of the types it receives (loop-carried types are
 * stable). Values the loop only reads are carried too: regions do not capture.
 *
 *   const [y, n] = whileLoop(g, [x, zero], (x, n) => greater(sum(x), 1), (x, n) => [mul(x, 0.5), add(n, 1)]);
 */
export function whileLoop(
  g: Graph,
  init: readonly SymbolicTensor[],
  condFn: (...args: SymbolicTensor[]) => SymbolicTensor,
  bodyFn: RegionFn,
  options: WhileOptions = {},
): SymbolicTensor[] {
  const label = `while '${options.name ?? 'while'}'`;
  const types = init.map((t) => t.type);
  const condRegion = buildRegion(types, condFn, `${label}: cond`);
  const bodyRegion = buildRegion(types, bodyFn, `${label}: body`);
  return g.apply(
    'while',
    init,
    { cond: condRegion, body: bodyRegion, maxIterations: options.maxIterations ?? -1 },
    options.name,
  );
}
