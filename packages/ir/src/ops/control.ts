import { attr } from '../attrs.js';
import { shapeError } from '../errors.js';
import { activeReferenceBudget } from '../graph/reference-budget.js';
import {
  interpretRegion,
  type Region,
  regionCost,
  regionInputTypes,
  regionResultTypes,
} from '../graph/region.js';
import type { RefTensor } from '../ref-tensor.js';
import { formatType, type TensorType } from '../shape.js';
import { type Cost, defineOp } from './op-def.js';

/**
 * Structured control flow, as in StableHLO: `cond` and `while` hold their code as nested regions
 * (self-contained graphs, see graph/region.ts) in attributes, so a graph stays a flat SSA list
 * whose every node can be verified, printed and serialized like any other. Devices never receive
 * these ops: the executor runs the regions (hence `cases` is empty and both are EXECUTOR_OPS).
 */

const listTypes = (types: readonly TensorType[]) => `(${types.map(formatType).join(', ')})`;

/** Same dtype and rank, and equal sizes wherever both are known. */
function compatible(a: TensorType, b: TensorType): boolean {
  return (
    a.dtype === b.dtype &&
    a.shape.length === b.shape.length &&
    a.shape.every((d, i) => d === null || b.shape[i] === null || d === b.shape[i])
  );
}

/** The region must take exactly the operands the node passes it. */
function checkOperands(op: string, label: string, region: Region, operands: readonly TensorType[]): void {
  const params = regionInputTypes(region);
  if (params.length !== operands.length) {
    throw shapeError(
      `${op}: the ${label} region takes ${params.length} values ${listTypes(params)}, the node passes ${operands.length} ${listTypes(operands)}`,
    );
  }
  params.forEach((p, i) => {
    if (!compatible(p, operands[i]!)) {
      throw shapeError(
        `${op}: ${label} region input ${i} is ${formatType(p)}, but the node passes ${formatType(operands[i]!)}`,
      );
    }
  });
}

const addCost = (a: Cost, b: Cost): Cost => ({ flops: a.flops + b.flops, bytes: a.bytes + b.bytes });
const maxCost = (a: Cost, b: Cost): Cost => ({
  flops: Math.max(a.flops, b.flops),
  bytes: Math.max(a.bytes, b.bytes),
});

/**
 * cond(pred, ...operands) {then, else}: runs one of two regions on the operands. `pred` is a bool
 * scalar. The branches return as many values as each other, of the same dtypes and ranks; where a
 * dimension differs between them, or is unknown in either, the result leaves it unknown.
 */
export const cond = defineOp({
  name: 'cond',
  kind: 'control',
  arity: { min: 1 },
  // biome-ignore lint/suspicious/noThenProperty: named for the branches, as in StableHLO; never awaited.
  attrs: { then: attr.region, else: attr.region },
  infer([pred, ...operands], a) {
    if (pred!.dtype !== 'bool' || pred!.shape.length !== 0) {
      throw shapeError(`cond: the predicate must be a bool scalar (bool[]), got ${formatType(pred!)}`);
    }
    checkOperands('cond', 'then', a.then, operands);
    checkOperands('cond', 'else', a.else, operands);
    const thenTypes = regionResultTypes(a.then);
    const elseTypes = regionResultTypes(a.else);
    if (thenTypes.length !== elseTypes.length) {
      throw shapeError(
        `cond: the then branch returns ${thenTypes.length} values ${listTypes(thenTypes)}, the else branch ${elseTypes.length} ${listTypes(elseTypes)}`,
      );
    }
    return thenTypes.map((t, i) => {
      const e = elseTypes[i]!;
      if (t.dtype !== e.dtype || t.shape.length !== e.shape.length) {
        throw shapeError(
          `cond: result ${i}: the then branch gives ${formatType(t)}, the else branch ${formatType(e)} (dtype and rank must agree)`,
        );
      }
      return { dtype: t.dtype, shape: t.shape.map((d, k) => (d !== null && d === e.shape[k] ? d : null)) };
    });
  },
  reference([pred, ...operands], a): RefTensor[] {
    const taken = pred!.data[0] !== 0;
    return interpretRegion(taken ? a.then : a.else, operands, `cond: ${taken ? 'then' : 'else'} branch`);
  },
  // One branch runs; the dearer one is the estimate.
  cost: (_inputs, _outputs, a) => maxCost(regionCost(a.then), regionCost(a.else)),
  gradient: { byTransform: 'a cond over the differentiated branches (autodiff/gradients.ts)' },
  cases: () => [],
});

/**
 * while(...carried) {cond, body, maxIterations}: while `cond` (carried -> bool scalar) holds,
 * carried = body(carried). A carried value keeps its type from iteration to iteration: the body
 * returns the dtype and rank it receives, and every dimension its input declares. With
 * `maxIterations` >= 0 the body runs at most that many times; a negative value sets no cap.
 */
export const whileOp = defineOp({
  name: 'while',
  kind: 'control',
  arity: { min: 1 },
  attrs: { cond: attr.region, body: attr.region, maxIterations: attr.int.default(-1) },
  infer(carried, a) {
    checkOperands('while', 'cond', a.cond, carried);
    checkOperands('while', 'body', a.body, carried);
    const test = regionResultTypes(a.cond);
    if (test.length !== 1 || test[0]!.dtype !== 'bool' || test[0]!.shape.length !== 0) {
      throw shapeError(
        `while: the cond region must return one bool scalar (bool[]), it returns ${listTypes(test)}`,
      );
    }
    const params = regionInputTypes(a.body);
    const results = regionResultTypes(a.body);
    if (results.length !== carried.length) {
      throw shapeError(
        `while: the body returns ${results.length} values ${listTypes(results)} for ${carried.length} carried values ${listTypes(carried)}`,
      );
    }
    return carried.map((init, i) => {
      const p = params[i]!;
      const r = results[i]!;
      const stable =
        r.dtype === p.dtype &&
        r.shape.length === p.shape.length &&
        p.shape.every((d, k) => d === null || r.shape[k] === d);
      if (!stable) {
        throw shapeError(
          `while: carried value ${i} enters the body as ${formatType(p)} but the body returns ${formatType(r)}; a loop-carried value must keep its type`,
        );
      }
      // A size survives the loop only if the body keeps it, whatever the number of iterations.
      return {
        dtype: init.dtype,
        shape: init.shape.map((d, k) => (d !== null && r.shape[k] === d ? d : null)),
      };
    });
  },
  reference(carried, a): RefTensor[] {
    let values: RefTensor[] = [...carried];
    const budget = activeReferenceBudget();
    for (let n = 0; a.maxIterations < 0 || n < a.maxIterations; n++) {
      const [go] = interpretRegion(a.cond, values, 'while: cond region');
      if (go!.data[0] === 0) break;
      budget?.iteration('while');
      values = interpretRegion(a.body, values, 'while: body region');
    }
    return values;
  },
  // One iteration: the trip count is not known before the loop runs.
  cost: (_inputs, _outputs, a) => addCost(regionCost(a.cond), regionCost(a.body)),
  gradient: { byTransform: 'unrolled into guarded steps when bounded (autodiff/gradients.ts)' },
  cases: () => [],
});
