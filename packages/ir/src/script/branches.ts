import type * as A from 'acorn';
import type { DType } from '../dtype.js';
import { Graph, type SymbolicTensor } from '../graph/builder.js';
import { regionFromGraph } from '../graph/region.js';
import type { Continuation, FunctionLowering, Outcome } from './lower.js';
import { asTensor, joinType, truthOf } from './operators.js';
import { type Binding, Frame, readBinding, type Scope, writeBinding } from './scope.js';
import { describe, type SValue, tensorValue } from './values.js';

/**
 * `if` statements. A condition known when the script is lowered (a number, a boolean) picks its
 * branch there and then. A condition read from a tensor becomes a `cond` node: each branch is
 * lowered into a region of its own, the outer tensors either branch reads become the node's
 * operands, and the variables either branch assigns become its results (SSA merge: a variable one
 * branch leaves alone keeps its value from before the `if` on that side).
 */

interface Joined {
  readonly whenTrue: SValue;
  readonly whenFalse: SValue;
  readonly dtype: DType;
  readonly scalar: boolean;
}

/** Builds the cond node for two lowered branches and the values they produce; returns its outputs. */
function buildCond(
  fl: FunctionLowering,
  at: A.Node,
  frame: Frame,
  pred: SymbolicTensor,
  thenFrame: Frame,
  elseFrame: Frame,
  joined: readonly Joined[],
): SymbolicTensor[] {
  const thenResults = joined.map((j) => asTensor(fl.ctx(thenFrame, at), j.whenTrue, j.dtype));
  const elseResults = joined.map((j) => asTensor(fl.ctx(elseFrame, at), j.whenFalse, j.dtype));
  // Both regions take every outer tensor that either branch reads, in one order.
  const operands = new Map<number, SymbolicTensor>();
  for (const f of [thenFrame, elseFrame])
    for (const [id, c] of f.captured) if (!operands.has(id)) operands.set(id, c.outer);
  const outer = [...operands.values()];
  const region = (f: Frame, results: readonly SymbolicTensor[]) => {
    const inputs = outer.map((o) => f.captured.get(o.id)?.inner ?? f.param(o.type));
    return regionFromGraph(
      f.graph,
      inputs.map((t) => t.id),
      results.map((t) => t.id),
    );
  };
  const thenRegion = region(thenFrame, thenResults);
  const elseRegion = region(elseFrame, elseResults);
  return (
    fl
      .ctx(frame, at)
      // biome-ignore lint/suspicious/noThenProperty: the cond op's attribute, named for its branch.
      .emit(() => frame.graph.apply('cond', [pred, ...outer], { then: thenRegion, else: elseRegion }))
  );
}

function join(fl: FunctionLowering, at: A.Node, what: string, a: SValue, b: SValue): Joined {
  const type = joinType(a, b);
  if (typeof type === 'string') {
    throw fl.fail(
      at,
      `${what} is ${describe(a)} after the then branch but ${describe(b)} after the else branch (${type}); both branches of a tensor 'if' must leave it with the same dtype and rank`,
    );
  }
  return { whenTrue: a, whenFalse: b, ...type };
}

const samePlain = (a: SValue, b: SValue) =>
  (a.kind === 'number' || a.kind === 'boolean') && a.kind === b.kind && Object.is(a.value, b.value);

/** An `if` that does not return: its branches fall through to the statement after it. */
export function lowerIf(fl: FunctionLowering, s: A.IfStatement, scope: Scope, frame: Frame): void {
  const test = truthOf(fl.ctx(frame, s.test), fl.expr(s.test, scope, frame));
  if ('known' in test) {
    fl.body(test.known ? s.consequent : s.alternate, scope, frame, null);
    return;
  }
  const thenFrame = new Frame(new Graph(), frame);
  const elseFrame = new Frame(new Graph(), frame);
  fl.body(s.consequent, scope, thenFrame, null);
  fl.body(s.alternate, scope, elseFrame, null);
  const assigned = new Set<Binding>([...thenFrame.overlay.keys(), ...elseFrame.overlay.keys()]);
  const merged: { binding: Binding; joined: Joined }[] = [];
  for (const b of assigned) {
    const a = fl.adapt(readBinding(b, thenFrame), thenFrame);
    const e = fl.adapt(readBinding(b, elseFrame), elseFrame);
    if (samePlain(a, e)) writeBinding(b, a, frame);
    else merged.push({ binding: b, joined: join(fl, s, `variable '${b.name}'`, a, e) });
  }
  // A tensor `if` that assigns nothing has no effect: scripts have no side effects.
  if (merged.length === 0) return;
  const outs = buildCond(
    fl,
    s,
    frame,
    test.tensor,
    thenFrame,
    elseFrame,
    merged.map((m) => m.joined),
  );
  merged.forEach((m, i) => {
    writeBinding(m.binding, tensorValue(outs[i]!, m.joined.scalar), frame);
  });
}

/**
 * An `if` that returns on some path. The rest of the function (`rest`) is lowered into each
 * branch, so both end in a return; with a tensor condition, the returned values become the cond
 * node's results, which the function returns.
 */
export function lowerReturningIf(
  fl: FunctionLowering,
  s: A.IfStatement,
  scope: Scope,
  frame: Frame,
  rest: Continuation,
): Outcome {
  const test = truthOf(fl.ctx(frame, s.test), fl.expr(s.test, scope, frame));
  if ('known' in test) return fl.body(test.known ? s.consequent : s.alternate, scope, frame, rest);
  const thenFrame = new Frame(new Graph(), frame);
  const elseFrame = new Frame(new Graph(), frame);
  const outcomes = [
    fl.body(s.consequent, scope, thenFrame, rest),
    fl.body(s.alternate, scope, elseFrame, rest),
  ] as const;
  const values = outcomes.map((o, i) => {
    if (o.kind === 'fall') {
      throw fl.fail(
        s,
        `this 'if' returns on some paths, but after its ${i === 0 ? 'then' : 'else'} branch the function can reach its end without returning`,
      );
    }
    return o.value;
  });
  const [a, b] = values as [SValue, SValue];
  const items = (v: SValue) => (v.kind === 'array' ? v.items : [v]);
  if ((a.kind === 'array') !== (b.kind === 'array') || items(a).length !== items(b).length) {
    throw fl.fail(
      s,
      `the two paths through this 'if' return different things: ${describe(a)} and ${describe(b)}`,
    );
  }
  const joined = items(a).map((x, i) => join(fl, s, `return value ${i}`, x, items(b)[i]!));
  const outs = buildCond(fl, s, frame, test.tensor, thenFrame, elseFrame, joined);
  const results = outs.map((t, i) => tensorValue(t, joined[i]!.scalar));
  return {
    kind: 'return',
    value: a.kind === 'array' ? { kind: 'array', items: results } : results[0]!,
    node: s,
  };
}
