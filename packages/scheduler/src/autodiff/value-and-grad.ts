import { broadcastLike, type Graph, gradients, KilnError, type SymbolicTensor, sum } from '@kiln/ir';
import { signatureOf } from '../compile/signature.js';
import { defaultEagerContext } from '../eager/context.js';
import { Tensor } from '../eager/tensor.js';
import type { ScriptedFunction } from '../script/script.js';
import { GraphFunction } from '../trace/graph-function.js';
import { traceWith } from '../trace/trace.js';
import { GraphBreak } from '../trace/trace-graph.js';

export interface GradOptions {
  /**
   * What to differentiate with respect to: tensors the function closes over (weights), in this
   * order. Default: the function's tensor arguments.
   */
  readonly wrt?: readonly Tensor[];
  readonly name?: string;
}

type Fn = (...args: never[]) => unknown;

interface Captured {
  readonly graph: Graph;
  readonly inputs: readonly SymbolicTensor[];
  readonly captures: readonly Tensor[];
  readonly captureInputs: readonly SymbolicTensor[];
  readonly value: SymbolicTensor;
}

const isScripted = (fn: unknown): fn is ScriptedFunction =>
  typeof fn === 'function' && 'lower' in fn && 'parsed' in fn;

function capture(fn: Fn, args: readonly unknown[], name: string, wrt: readonly Tensor[]): Captured {
  const tensors = args.filter((a): a is Tensor => a instanceof Tensor);
  if (isScripted(fn)) {
    const lowered = fn.lower(...tensors);
    if (lowered.outputs.length !== 1)
      throw new KilnError('invalid-argument', `${name} must return one tensor to differentiate`);
    const captures = lowered.captureInputs.map((c) => c.source as Tensor);
    return {
      graph: lowered.graph,
      inputs: lowered.inputs,
      captures,
      captureInputs: lowered.captureInputs.map((c) => c.placeholder),
      value: lowered.outputs[0]!,
    };
  }
  let traced: ReturnType<typeof traceWith>;
  try {
    traced = traceWith(
      { strict: true, name },
      (...a: unknown[]) => {
        const out = (fn as (...x: unknown[]) => unknown)(...a);
        // Make sure every `wrt` tensor is in the graph, even one the function never reads.
        for (const w of wrt) traceGraphOf(out)?.lift(w);
        return out;
      },
      ...args,
    );
  } catch (e) {
    if (e instanceof GraphBreak) {
      throw new KilnError('unsupported', `${name}: gradients need a graph, and ${e.message}`, { cause: e });
    }
    throw e;
  }
  if (traced.outputs.length !== 1)
    throw new KilnError('invalid-argument', `${name} must return one tensor to differentiate`);
  return {
    graph: traced.graph,
    inputs: traced.inputs,
    captures: traced.captures,
    captureInputs: traced.captureInputs,
    value: traced.outputs[0]!,
  };
}

function traceGraphOf(out: unknown): { lift(t: Tensor): SymbolicTensor } | undefined {
  const graph = (out as { graph?: unknown } | null)?.graph;
  return graph && typeof (graph as { lift?: unknown }).lift === 'function'
    ? (graph as { lift(t: Tensor): SymbolicTensor })
    : undefined;
}

/**
 * `valueAndGrad(fn)(...args)` → [value, gradients]: the value of `fn` (a float tensor; a
 * non-scalar is summed) and its gradients with respect to the tensor arguments, or to the tensors
 * named in `options.wrt`. The function is traced (or, if scripted, lowered with its control flow),
 * differentiated as a graph, optimized and compiled once per input signature, like `compile`.
 */
export function valueAndGrad(fn: Fn, options: GradOptions = {}): (...args: unknown[]) => [Tensor, Tensor[]] {
  const name = options.name ?? (fn.name || 'the differentiated function');
  const wrt = options.wrt ?? [];
  const cache = new Map<string, GraphFunction>();
  return (...args: unknown[]) => {
    const key = signatureOf(args, name);
    let gf = cache.get(key);
    if (!gf || gf.captures.some((t) => t.isDisposed)) {
      const c = capture(fn, args, name, wrt);
      const value = c.value.shape.length === 0 ? c.value : sum(c.value);
      const xs = wrt.length
        ? wrt.map((w) => {
            const at = c.captures.indexOf(w);
            if (at < 0)
              throw new KilnError(
                'invalid-argument',
                `${name}: a wrt tensor (${w.describe()}) is not used by the function`,
              );
            return c.captureInputs[at]!;
          })
        : c.inputs;
      const grads = gradients([value], xs).map(
        (gr, i) =>
          gr ??
          broadcastLike(
            c.graph.constant({ dtype: 'float32', shape: [], data: new Float32Array([0]) }),
            xs[i]!,
          ),
      );
      const eager =
        (args.find((a) => a instanceof Tensor) as Tensor | undefined)?.context ??
        wrt[0]?.context ??
        defaultEagerContext();
      gf = new GraphFunction(eager, c.graph, c.inputs, c.captures, c.captureInputs, [value, ...grads], name);
      cache.set(key, gf);
    }
    const [value, ...grads] = gf.call(args.filter((a): a is Tensor => a instanceof Tensor));
    return [value!, grads];
  };
}

/** The gradients only: `grad(fn)(...args)` is `valueAndGrad(fn)(...args)[1]`. */
export function grad(fn: Fn, options: GradOptions = {}): (...args: unknown[]) => Tensor[] {
  const vg = valueAndGrad(fn, options);
  return (...args) => {
    const [value, grads] = vg(...args);
    value.dispose();
    return grads;
  };
}
