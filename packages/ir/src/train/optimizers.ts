import { add, div, mul, pow, sqrt, square, sub } from '../api/ops.js';
import { gradients } from '../autodiff/gradients.js';
import { KilnError } from '../errors.js';
import { type Graph, SymbolicTensor } from '../graph/builder.js';
import { requiredNodes } from '../graph/prune.js';
import { formatType } from '../shape.js';

/**
 * Optimizers as graph ops, in the TensorFlow 1.x style: `minimize` adds the gradients and the
 * updates (assigns to the variables and to the optimizer's own state, which are variables too, so
 * checkpoints carry them) and returns the update tensors; fetch them as a Session run's targets.
 * Each run reads every variable as it was before the run, so an update computes from consistent
 * values and the new state is used only by the tensors of the same step.
 */
export interface Optimizer {
  minimize(loss: SymbolicTensor, variables?: readonly SymbolicTensor[]): SymbolicTensor[];
  /**
   * The update half of `minimize`, for gradients computed some other way (averaged over replicas
   * by an all-reduce, clipped, accumulated). Builds its nodes in the current device scope.
   */
  applyGradients(pairs: readonly GradientPair[]): SymbolicTensor[];
}

/** A variable and the gradient to apply to it. */
export type GradientPair = readonly [variable: SymbolicTensor, gradient: SymbolicTensor];

/** The float variables `loss` depends on: what minimize trains by default. */
export function trainableVariables(loss: SymbolicTensor): SymbolicTensor[] {
  const g = loss.graph;
  return requiredNodes(g, [loss.id])
    .map((id) => g.nodes[id]!)
    .filter((n) => n.op === 'variable' && n.attrs.dtype === 'float32')
    .map((n) => new SymbolicTensor(g, n.outputs[0]!));
}

function gradientsOf(
  loss: SymbolicTensor,
  variables: readonly SymbolicTensor[] | undefined,
): [SymbolicTensor, SymbolicTensor][] {
  const vars = variables ?? trainableVariables(loss);
  if (vars.length === 0)
    throw new KilnError('invalid-argument', `minimize: ${loss} depends on no float variable`);
  for (const v of vars)
    if (v.node.op !== 'variable') throw new KilnError('invalid-argument', `minimize: ${v} is not a variable`);
  const grads = gradients([loss], vars);
  return vars.flatMap((v, i) => (grads[i] ? [[v, grads[i]!] as [SymbolicTensor, SymbolicTensor]] : []));
}

/** Checks pairs before an update is built from them: one graph, variables, matching types. */
function checkPairs(pairs: readonly GradientPair[]): void {
  const g = pairs[0]?.[0].graph;
  const seen = new Set<string>();
  for (const [v, grad] of pairs) {
    if (v.node.op !== 'variable')
      throw new KilnError('invalid-argument', `applyGradients: ${v} is not a variable`);
    const name = String(v.node.attrs.name);
    if (seen.has(name))
      throw new KilnError('invalid-argument', `applyGradients: variable '${name}' is listed twice`);
    seen.add(name);
    if (v.graph !== g || grad.graph !== g)
      throw new KilnError(
        'invalid-argument',
        `applyGradients: variable '${name}' and its gradient are not all in one graph`,
      );
    if (
      grad.dtype !== v.dtype ||
      grad.shape.length !== v.shape.length ||
      grad.shape.some((d, i) => d !== v.shape[i])
    )
      throw new KilnError(
        'invalid-argument',
        `applyGradients: the gradient of variable '${name}' is ${formatType(grad.type)}, not ${formatType(v.type)}`,
      );
  }
}

/** `base`, or base_1, base_2, ... if a variable of that name exists (a second optimizer). */
function uniqueVariableName(g: Graph, base: string): string {
  const taken = new Set(g.nodes.filter((n) => n.op === 'variable').map((n) => n.attrs.name as string));
  let name = base;
  // Compared as the variable will be named, inside the current scopes: two optimizers under one
  // scope (the replicas of a data-parallel job, say) each get a counter of their own.
  for (let i = 1; taken.has(g.scopedName(name)); i++) name = `${base}_${i}`;
  return name;
}

/** A state variable next to `v` (named v/slot), starting at zero. */
function slot(g: Graph, v: SymbolicTensor, suffix: string): SymbolicTensor {
  const shape = v.shape as number[];
  const zeros = g.constant({
    dtype: 'float32',
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  });
  return g.variable(`${String(v.node.attrs.name)}/${suffix}`, zeros);
}

export interface SgdOptions {
  readonly learningRate: number | SymbolicTensor;
  /** Heavy-ball momentum; 0 for plain gradient descent. */
  readonly momentum?: number;
}

/** SGD: v <- momentum * v + grad; w <- w - lr * v (w <- w - lr * grad without momentum). */
export class SGD implements Optimizer {
  constructor(readonly options: SgdOptions) {}

  minimize(loss: SymbolicTensor, variables?: readonly SymbolicTensor[]): SymbolicTensor[] {
    return this.applyGradients(gradientsOf(loss, variables));
  }

  applyGradients(pairs: readonly GradientPair[]): SymbolicTensor[] {
    checkPairs(pairs);
    const { learningRate: lr, momentum = 0 } = this.options;
    return pairs.flatMap(([w, grad]) => {
      const g = w.graph;
      if (momentum === 0) return [g.assign(w, sub(w, mul(grad, lr)))];
      const v = slot(g, w, 'momentum');
      const vNew = add(mul(v, momentum), grad);
      return [g.assign(v, vNew), g.assign(w, sub(w, mul(vNew, lr)))];
    });
  }
}

export interface AdamOptions {
  readonly learningRate: number | SymbolicTensor;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
}

/** Adam (Kingma and Ba), with bias correction from a step counter variable. */
export class Adam implements Optimizer {
  constructor(readonly options: AdamOptions) {}

  minimize(loss: SymbolicTensor, variables?: readonly SymbolicTensor[]): SymbolicTensor[] {
    return this.applyGradients(gradientsOf(loss, variables));
  }

  applyGradients(pairs: readonly GradientPair[]): SymbolicTensor[] {
    checkPairs(pairs);
    // Without variables there is nothing to update, and a step counter alone would be noise.
    if (pairs.length === 0) return [];
    const g = pairs[0]![0].graph;
    const { learningRate: lr, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7 } = this.options;
    const step = g.variable(
      uniqueVariableName(g, 'adam/step'),
      g.constant({ dtype: 'float32', shape: [], data: new Float32Array([0]) }),
    );
    const t = add(step, 1);
    const correction1 = sub(
      1,
      pow(g.constant({ dtype: 'float32', shape: [], data: new Float32Array([beta1]) }), t),
    );
    const correction2 = sub(
      1,
      pow(g.constant({ dtype: 'float32', shape: [], data: new Float32Array([beta2]) }), t),
    );
    const updates = pairs.flatMap(([w, grad]) => {
      const m = slot(g, w, 'adam_m');
      const v = slot(g, w, 'adam_v');
      const mNew = add(mul(m, beta1), mul(grad, 1 - beta1));
      const vNew = add(mul(v, beta2), mul(square(grad), 1 - beta2));
      const update = div(div(mNew, correction1), add(sqrt(div(vNew, correction2)), epsilon));
      return [g.assign(m, mNew), g.assign(v, vNew), g.assign(w, sub(w, mul(update, lr)))];
    });
    return [...updates, g.assign(step, t)];
  }
}
