import type * as A from 'acorn';
import type { DType } from '../dtype.js';
import { Graph, type SymbolicTensor } from '../graph/builder.js';
import { regionFromGraph } from '../graph/region.js';
import { type Dim, formatType, type Shape } from '../shape.js';
import { assignedOuterNames, identifiersIn } from './analysis.js';
import type { FunctionLowering } from './lower.js';
import { asTensor, truthOf } from './operators.js';
import { type Binding, Frame, readBinding, Scope, writeBinding } from './scope.js';
import { describe, dtypeOfPlain, isScalarLike, num, type SValue, tensorValue } from './values.js';

/**
 * Loops. A counted `for` loop whose bounds are known when the script is lowered, and that runs at
 * most MAX_UNROLL times, is unrolled: its counter is a plain number in each copy of the body.
 * Every other loop becomes a `while` node. Its carried values are the variables of enclosing
 * scopes that the loop assigns; numbers and booleans among them become scalar tensors (a `let i = 0`
 * that the loop increments is an int32 carried value), and so does the counter of a counted loop
 * that is not unrolled. Outer tensors the loop only reads are carried unchanged, since regions do
 * not capture. If an iteration changes a carried value's type (an int32 counter meets a fraction,
 * a dimension changes), the loop is lowered again with the type widened (float32, an unknown
 * dimension) until the types are stable.
 */
export const MAX_UNROLL = 64;

/** Past this many iterations a counted loop is not bounded by its trip count (no gradient). */
const MAX_COUNTED_TRIPS = 1 << 20;

/** The type of a carried value; `scalar` as in values.ts. */
interface Carried {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly scalar: boolean;
}

const typeOfValue = (v: SValue): { dtype: DType; shape: Shape } =>
  v.kind === 'tensor' ? v.tensor.type : { dtype: dtypeOfPlain(v), shape: [] };

const formatCarried = (t: Carried) => formatType(t);

/** The type a carried value must have to hold both `t` and what an iteration left, `r`. */
function widen(t: Carried, r: SValue): Carried | string {
  if (r.kind !== 'number' && r.kind !== 'boolean' && r.kind !== 'tensor')
    return `${describe(r)} cannot be carried by a loop`;
  const rt = typeOfValue(r);
  if (rt.shape.length !== t.shape.length) return 'its rank changes';
  let dtype = t.dtype;
  if (rt.dtype !== t.dtype) {
    if (rt.dtype === 'bool' || t.dtype === 'bool') return 'its dtype changes';
    dtype = 'float32';
    // Only numbers (and values standing for numbers) widen to float32; tensors keep their dtype.
    const fixedT = !t.scalar && t.dtype !== 'float32';
    const fixedR = r.kind === 'tensor' && !r.scalar && rt.dtype !== 'float32';
    if (fixedT || fixedR) return 'its dtype changes';
  }
  const shape: Dim[] = t.shape.map((d, k) => (d === rt.shape[k] ? d : null));
  return { dtype, shape, scalar: t.scalar && isScalarLike(r) };
}

const sameCarried = (a: Carried, b: Carried) =>
  a.dtype === b.dtype && a.scalar === b.scalar && a.shape.every((d, k) => d === b.shape[k]);

interface LoopParts {
  readonly node: A.Node;
  readonly test: A.Expression;
  readonly body: A.Statement;
  readonly update: A.Expression | null;
  readonly scope: Scope;
  /** A bound on the iterations, when the loop's trip count is known. */
  readonly maxIterations?: number;
}

/** Evaluates `e` without touching the graph, if it is a plain number now. */
function probeNumber(fl: FunctionLowering, e: A.Expression, scope: Scope, frame: Frame): number | undefined {
  try {
    const v = fl.expr(e, scope, new Frame(new Graph(), frame, true));
    return v.kind === 'number' ? v.value : undefined;
  } catch {
    return undefined;
  }
}

export function lowerWhile(fl: FunctionLowering, s: A.WhileStatement, scope: Scope, frame: Frame): void {
  lowerLoop(fl, { node: s, test: s.test, body: s.body, update: null, scope }, frame);
}

export function lowerFor(fl: FunctionLowering, s: A.ForStatement, scope: Scope, frame: Frame): void {
  const loopScope = new Scope(scope);
  if (s.init?.type === 'VariableDeclaration') fl.declaration(s.init, loopScope, frame);
  else if (s.init) fl.effect(s.init, loopScope, frame);
  const counted = countedLoop(fl, s, loopScope, frame);
  if (counted && 'values' in counted) {
    for (const value of counted.values) {
      writeBinding(counted.counter, num(value), frame);
      fl.body(s.body, loopScope, frame, null);
    }
    return;
  }
  // A counted loop too long to unroll still has a known trip count: it bounds the while node,
  // which is what lets autodiff differentiate through it.
  const parts = { node: s, test: s.test!, body: s.body, update: s.update ?? null, scope: loopScope };
  lowerLoop(fl, counted ? { ...parts, maxIterations: counted.tripCount } : parts, frame);
}

/**
 * `for (let i = a; i < b; i++)` (or <=, >, >=, !=, !==; i++, i--, i += k, i -= k) with a, b and k
 * plain numbers that the body cannot change: the counter's values, if there are at most
 * MAX_UNROLL of them.
 */
function countedLoop(
  fl: FunctionLowering,
  s: A.ForStatement,
  scope: Scope,
  frame: Frame,
): { counter: Binding; values: number[] } | { tripCount: number } | undefined {
  const init = s.init;
  if (init?.type !== 'VariableDeclaration' || init.declarations.length !== 1) return undefined;
  const name = (init.declarations[0]!.id as A.Identifier).name;
  const counter = scope.vars.get(name)!;
  const start = readBinding(counter, frame);
  const test = s.test;
  if (start.kind !== 'number' || test?.type !== 'BinaryExpression') return undefined;
  if (test.left.type !== 'Identifier' || test.left.name !== name) return undefined;
  const update = s.update;
  let step: number | undefined;
  let stepExpr: A.Expression | undefined;
  if (update?.type === 'UpdateExpression' && (update.argument as A.Identifier).name === name) {
    step = update.operator === '++' ? 1 : -1;
  } else if (
    update?.type === 'AssignmentExpression' &&
    (update.left as A.Identifier).name === name &&
    (update.operator === '+=' || update.operator === '-=')
  ) {
    stepExpr = update.right;
    const k = probeNumber(fl, update.right, scope, frame);
    if (k !== undefined) step = update.operator === '+=' ? k : -k;
  }
  if (step === undefined) return undefined;
  const changed = new Set(assignedOuterNames([s.body]).map((id) => id.name));
  const read = identifiersIn(test.right, identifiersIn(stepExpr));
  if (changed.has(name) || [...read].some((n) => changed.has(n))) return undefined;
  const bound = probeNumber(fl, test.right, scope, frame);
  if (bound === undefined) return undefined;
  const holds: Record<string, (v: number) => boolean> = {
    '<': (v) => v < bound,
    '<=': (v) => v <= bound,
    '>': (v) => v > bound,
    '>=': (v) => v >= bound,
    '!=': (v) => v !== bound,
    '!==': (v) => v !== bound,
  };
  const test1 = holds[test.operator];
  if (!test1) return undefined;
  const values: number[] = [];
  for (let v = start.value; test1(v); v += step) {
    if (values.length === MAX_UNROLL) {
      const away =
        step === 0 || (test.operator.startsWith('<') ? step < 0 : test.operator.startsWith('>') && step > 0);
      if (away) throw fl.fail(s, 'this loop never ends: its counter moves away from its bound');
      let tripCount = values.length;
      for (let w = v; test1(w) && tripCount <= MAX_COUNTED_TRIPS; w += step) tripCount++;
      return tripCount <= MAX_COUNTED_TRIPS ? { tripCount } : undefined;
    }
    values.push(v);
  }
  return { counter, values };
}

/** A loop as a `while` node (see the top of this file). */
function lowerLoop(fl: FunctionLowering, parts: LoopParts, frame: Frame): void {
  const { node, test, body, update, scope } = parts;
  const carried = assignedOuterNames([body, update]).map((id) => fl.target(id, scope, frame));
  if (carried.length === 0) {
    const truth = truthOf(fl.ctx(frame, test), fl.expr(test, scope, new Frame(new Graph(), frame, true)));
    if ('known' in truth && !truth.known) return;
    throw fl.fail(
      node,
      'this loop assigns no variable declared before it, so nothing it does can be seen (or its condition change)',
    );
  }
  const initial = carried.map((b) => fl.read(b, frame, node));
  let types: Carried[] = initial.map((v, i) => {
    if (v.kind !== 'number' && v.kind !== 'boolean' && v.kind !== 'tensor') {
      throw fl.fail(
        node,
        `'${carried[i]!.name}' is ${describe(v)}; a loop that depends on tensors can carry only tensors, numbers and booleans`,
      );
    }
    return { ...typeOfValue(v), scalar: isScalarLike(v) };
  });

  for (let attempt = 0; ; attempt++) {
    const condFrame = new Frame(new Graph(), frame);
    const bodyFrame = new Frame(new Graph(), frame);
    const enter = (f: Frame) =>
      carried.map((b, i) => {
        const p = f.param(types[i]!);
        f.overlay.set(b, tensorValue(p, types[i]!.scalar));
        return p;
      });
    const condArgs = enter(condFrame);
    const bodyArgs = enter(bodyFrame);
    const truth = truthOf(fl.ctx(condFrame, test), fl.expr(test, scope, condFrame));
    if ('known' in truth) {
      // The condition does not depend on anything the loop changes.
      if (!truth.known) return;
      throw fl.fail(test, 'this loop condition is always true, so the loop would never end');
    }
    fl.body(body, scope, bodyFrame, null);
    if (update) fl.effect(update, scope, bodyFrame);
    const results = carried.map((b) => fl.adapt(readBinding(b, bodyFrame), bodyFrame));
    const next = types.map((t, i) => {
      const w = widen(t, results[i]!);
      if (typeof w === 'string') {
        throw fl.fail(
          node,
          `'${carried[i]!.name}' enters the loop as ${formatCarried(t)} but an iteration leaves it ${describe(results[i]!)}: ${w}; a loop-carried value must keep its dtype and rank`,
        );
      }
      return w;
    });
    if (!next.every((t, i) => sameCarried(t, types[i]!))) {
      if (attempt >= 8) throw fl.fail(node, 'the types of the values this loop carries do not settle');
      types = next;
      continue;
    }
    buildWhile(fl, node, frame, {
      maxIterations: parts.maxIterations ?? -1,
      carried,
      types,
      initial,
      condFrame,
      condArgs,
      pred: truth.tensor,
      bodyFrame,
      bodyArgs,
      results,
    });
    return;
  }
}

function buildWhile(
  fl: FunctionLowering,
  node: A.Node,
  frame: Frame,
  loop: {
    maxIterations: number;
    carried: readonly Binding[];
    types: readonly Carried[];
    initial: readonly SValue[];
    condFrame: Frame;
    condArgs: readonly SymbolicTensor[];
    pred: SymbolicTensor;
    bodyFrame: Frame;
    bodyArgs: readonly SymbolicTensor[];
    results: readonly SValue[];
  },
): void {
  const { carried, types, condFrame, bodyFrame } = loop;
  const init = loop.initial.map((v, i) => asTensor(fl.ctx(frame, node), v, types[i]!.dtype));
  const bodyResults = loop.results.map((r, i) => asTensor(fl.ctx(bodyFrame, node), r, types[i]!.dtype));
  // Outer tensors the loop only reads travel with it as carried values it never changes.
  const invariants = new Map<number, SymbolicTensor>();
  for (const f of [condFrame, bodyFrame])
    for (const [id, c] of f.captured) if (!invariants.has(id)) invariants.set(id, c.outer);
  const outer = [...invariants.values()];
  const extra = (f: Frame) => outer.map((o) => f.captured.get(o.id)?.inner ?? f.param(o.type));
  const condInputs = [...loop.condArgs, ...extra(condFrame)];
  const bodyInputs = [...loop.bodyArgs, ...extra(bodyFrame)];
  const ids = (ts: readonly SymbolicTensor[]) => ts.map((t) => t.id);
  const condRegion = regionFromGraph(condFrame.graph, ids(condInputs), [loop.pred.id]);
  const bodyRegion = regionFromGraph(
    bodyFrame.graph,
    ids(bodyInputs),
    ids([...bodyResults, ...bodyInputs.slice(carried.length)]),
  );
  const outs = fl.ctx(frame, node).emit(() =>
    frame.graph.apply('while', [...init, ...outer], {
      cond: condRegion,
      body: bodyRegion,
      maxIterations: loop.maxIterations,
    }),
  );
  carried.forEach((b, i) => {
    writeBinding(b, tensorValue(outs[i]!, types[i]!.scalar), frame);
  });
}
