import { logicalAnd } from '../api/ops.js';
import { KilnError } from '../errors.js';
import { type Graph, SymbolicTensor } from '../graph/builder.js';
import { cond as condOp } from '../graph/control-builder.js';
import { atNode, describeNode, type Node, type ValueId } from '../graph/graph.js';
import type { Region } from '../graph/region.js';
import { opDef } from '../ops/index.js';
import { broadcastLike } from './expand.js';

/** The longest bounded loop whose gradient is taken by unrolling it. */
export const MAX_UNROLLED_ITERATIONS = 1024;

const isFloat = (t: SymbolicTensor) => t.dtype === 'float32';

function scalar(g: Graph, value: number, dtype: 'float32' | 'bool'): SymbolicTensor {
  const data = dtype === 'bool' ? new Uint8Array([value]) : new Float32Array([value]);
  return g.constant({ dtype, shape: [], data });
}

/** Zeros of t's shape and dtype (an int32 loop counter carried next to floats gets int32 zeros). */
const zerosLike = (t: SymbolicTensor) => {
  const data =
    t.dtype === 'float32' ? new Float32Array(1) : t.dtype === 'int32' ? new Int32Array(1) : new Uint8Array(1);
  return broadcastLike(t.graph.constant({ dtype: t.dtype, shape: [], data }), t);
};

/**
 * Reverse-mode autodiff as a graph transformation (TensorFlow 1.x's `tf.gradients`): appends to
 * the graph the nodes that compute d(sum of ys weighted by gradYs)/d(xs), and returns them; null
 * for an x that no y depends on (through differentiable ops). gradYs default to ones.
 *
 * Every op's rule comes from its definition. Ops without a gradient in mathematics (comparisons,
 * indices, rounding) pass none, explicitly. Through `cond`, the gradient is a cond over the
 * differentiated branches; through `while`, a loop bounded by maxIterations is unrolled into guarded
 * steps, keeping each step's carried values; an unbounded loop is an error, never a wrong gradient.
 */
export function gradients(
  ys: readonly SymbolicTensor[],
  xs: readonly SymbolicTensor[],
  gradYs?: readonly SymbolicTensor[],
): (SymbolicTensor | null)[] {
  const g = ys[0]?.graph ?? xs[0]?.graph;
  if (!g) return [];
  for (const t of [...ys, ...xs, ...(gradYs ?? [])]) {
    if (t.graph !== g) throw new KilnError('invalid-argument', `gradients: ${t} belongs to another graph`);
  }
  const end = g.nodes.length;
  const fromX = reachableFrom(
    g,
    xs.map((x) => x.id),
    end,
  );
  const cot = new Map<ValueId, SymbolicTensor>();
  const accumulate = (v: ValueId, c: SymbolicTensor) => {
    const prev = cot.get(v);
    cot.set(v, prev ? g.apply('add', [prev, c], {})[0]! : c);
  };
  ys.forEach((y, i) => {
    if (!isFloat(y))
      throw new KilnError(
        'invalid-argument',
        `gradients: ${y} is not float32; only float values have gradients`,
      );
    accumulate(y.id, gradYs?.[i] ?? broadcastLike(scalar(g, 1, 'float32'), y));
  });
  const needed = neededFor(
    g,
    ys.map((y) => y.id),
    end,
  );
  for (let id = end - 1; id >= 0; id--) {
    const node = g.nodes[id]!;
    if (!needed[id] || !node.outputs.some((v) => cot.has(v))) continue;
    const targets = node.inputs.map((v) => fromX.has(v) && isFloat(new SymbolicTensor(g, v)));
    if (!targets.some(Boolean)) continue;
    const outs = node.outputs.map((v) => new SymbolicTensor(g, v));
    const cotangents = outs.map((o) => cot.get(o.id) ?? zerosLike(o));
    const ins = node.inputs.map((v) => new SymbolicTensor(g, v));
    let inputCots: readonly (SymbolicTensor | null)[];
    try {
      // A node's gradient runs where the node runs (TensorFlow's colocate_gradients_with_ops), so
      // a layer placed on a worker is also differentiated there.
      const differentiate = () =>
        node.op === 'cond'
          ? condGradient(g, node, ins, cotangents, targets)
          : node.op === 'while'
            ? whileGradient(g, node, ins, cotangents)
            : ruleGradient(node, ins, outs, cotangents);
      inputCots = node.device === undefined ? differentiate() : g.onDevice(node.device, differentiate);
    } catch (e) {
      throw atNode(node, e);
    }
    inputCots.forEach((c, k) => {
      if (c && targets[k]) accumulate(node.inputs[k]!, c);
    });
  }
  return xs.map((x) => cot.get(x.id) ?? null);
}

function ruleGradient(
  node: Node,
  ins: SymbolicTensor[],
  outs: SymbolicTensor[],
  cotangents: SymbolicTensor[],
): readonly (SymbolicTensor | null)[] {
  const rule = opDef(node.op).gradient;
  if ('byTransform' in rule)
    throw new KilnError('runtime', `${node.op} must be differentiated by the transform`);
  if (typeof rule !== 'function') return ins.map(() => null);
  return rule({ attrs: node.attrs, inputs: ins, outputs: outs, cotangents });
}

/** Values computed from `sources` (by nodes before `end`). */
function reachableFrom(g: Graph, sources: readonly ValueId[], end: number): Set<ValueId> {
  const reached = new Set(sources);
  for (let id = 0; id < end; id++) {
    const node = g.nodes[id]!;
    if (node.inputs.some((v) => reached.has(v))) for (const v of node.outputs) reached.add(v);
  }
  return reached;
}

/** Nodes that `targets` depend on. */
function neededFor(g: Graph, targets: readonly ValueId[], end: number): Uint8Array {
  const needed = new Uint8Array(end);
  const stack = targets.map((v) => g.values[v]!.node);
  while (stack.length) {
    const id = stack.pop()!;
    if (id >= end || needed[id]) continue;
    needed[id] = 1;
    for (const v of g.nodes[id]!.inputs) stack.push(g.values[v]!.node);
  }
  return needed;
}

/** Applies a region's nodes in `g` to `args`, returning its results (types re-inferred). */
export function inlineRegion(g: Graph, region: Region, args: readonly SymbolicTensor[]): SymbolicTensor[] {
  const map = new Map<ValueId, SymbolicTensor>(region.inputs.map((v, i) => [v, args[i]!]));
  for (const node of region.nodes) {
    if (node.outputs.every((v) => map.has(v))) continue;
    const outs = g.apply(
      node.op,
      node.inputs.map((v) => map.get(v)!),
      node.attrs,
    );
    node.outputs.forEach((v, k) => map.set(v, outs[k]!));
  }
  return region.results.map((v) => map.get(v)!);
}

/**
 * d(cond): a cond on the same predicate whose branches differentiate the original branches,
 * taking the operands and the output cotangents and returning cotangents for the float operands.
 */
function condGradient(
  g: Graph,
  node: Node,
  ins: SymbolicTensor[],
  cotangents: SymbolicTensor[],
  targets: boolean[],
): (SymbolicTensor | null)[] {
  const operands = ins.slice(1);
  const wanted = operands.map((_, k) => targets[k + 1]!);
  const branch =
    (region: Region) =>
    (...args: SymbolicTensor[]) => {
      const child = args[0]!.graph;
      const xs = args.slice(0, operands.length);
      const results = inlineRegion(child, region, xs);
      const cots = args.slice(operands.length);
      const floatResults = results.map((r, i) => [r, cots[i]!] as const).filter(([r]) => isFloat(r));
      const grads = gradients(
        floatResults.map(([r]) => r),
        xs,
        floatResults.map(([, c]) => c),
      );
      return xs.flatMap((x, k) => (wanted[k] ? [grads[k] ?? zerosLike(x)] : []));
    };
  const floatCots = cotangents;
  const outs = condOp(
    g,
    ins[0]!,
    [...operands, ...floatCots],
    branch(node.attrs.then as Region),
    branch(node.attrs.else as Region),
    `${node.name ?? 'cond'}/grad`,
  );
  let next = 0;
  return [null, ...wanted.map((w) => (w ? outs[next++]! : null))];
}

/**
 * d(while) for a loop bounded by maxIterations: the loop unrolled into that many guarded steps
 * (each a cond that applies the body while the condition has held so far), so every step's carried
 * values stay in the graph, then differentiated like any other computation.
 */
function whileGradient(
  g: Graph,
  node: Node,
  ins: SymbolicTensor[],
  cotangents: SymbolicTensor[],
): (SymbolicTensor | null)[] {
  const max = node.attrs.maxIterations as number;
  if (max < 0) {
    throw new KilnError(
      'unsupported',
      `the gradient of an unbounded while loop is not supported: give ${describeNode(node)} a bound (whileLoop(..., { maxIterations }) ) so its carried values can be saved`,
    );
  }
  if (max > MAX_UNROLLED_ITERATIONS) {
    throw new KilnError(
      'unsupported',
      `the gradient of a while loop bounded at ${max} iterations would unroll past ${MAX_UNROLLED_ITERATIONS}`,
    );
  }
  const condRegion = node.attrs.cond as Region;
  const body = node.attrs.body as Region;
  let carried = ins;
  let active = scalar(g, 1, 'bool');
  for (let i = 0; i < max; i++) {
    const [test] = inlineRegion(g, condRegion, carried);
    active = logicalAnd(active, test!);
    carried = condOp(
      g,
      active,
      carried,
      (...c) => inlineRegion(c[0]!.graph, body, c),
      (...c) => c,
      `${node.name ?? 'while'}/unrolled${i}`,
    );
  }
  const floatOuts = carried.map((c, k) => [c, cotangents[k]!] as const).filter(([c]) => isFloat(c));
  return gradients(
    floatOuts.map(([c]) => c),
    ins,
    floatOuts.map(([, c]) => c),
  );
}
