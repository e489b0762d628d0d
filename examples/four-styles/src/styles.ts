import {
  add,
  compile,
  Graph,
  greater,
  less,
  logicalAnd,
  matmul,
  mul,
  Session,
  script,
  sum,
  type Tensor,
  tanh,
  tensor,
  tidy,
  traceWith,
  whileLoop,
} from 'kiln-tensor';
import { DECAY, EPSILON, MAX_STEPS, recur, WIDTH } from './cell.js';

/** Each style as an async function from (h0, w) to the final state's values. */
export type Style = (h0: Tensor, w: Tensor) => Promise<Float32Array>;

/** Reads a result and frees it. */
async function values(t: Tensor): Promise<Float32Array> {
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

/** 1. Symbolic (TensorFlow 1.x): an explicit while op in a graph, run by a Session. */
export function symbolic(): Style {
  const g = new Graph();
  const h0 = g.placeholder('float32', [1, WIDTH], 'h0');
  const w = g.placeholder('float32', [WIDTH, WIDTH], 'w');
  const [h] = whileLoop(
    g,
    [h0, w, tensor(g, [0], [], 'int32')],
    (h, _w, i) => logicalAnd(greater(sum(mul(h, h)), EPSILON), less(i, MAX_STEPS)),
    (h, w, i) => [mul(tanh(matmul(h, w)), DECAY), w, add(i, 1)],
    { name: 'recur' },
  );
  g.output('h', h!);
  const session = new Session(g);
  return async (x, weights) =>
    (await session.run('h', { h0: await x.toHost(), w: await weights.toHost() })).data as Float32Array;
}

/** 2. Eager (PyTorch): the JS loop itself. */
export const eager = (): Style => async (x, w) => values(tidy(() => recur(x, w)));

/**
 * 3. Trace (TorchScript trace), non-strict: records one run on the first input and freezes its
 * loop count into the graph, with a warning. Right for that input; wrong for the others.
 */
export function traced(example: Tensor, w: Tensor): Style {
  const fn = traceWith({ strict: false, name: 'recur' }, recur, example, w).toFunction();
  return async (x, weights) => values(fn.call([x, weights])[0]!);
}

/** 5. Script (TorchScript script): the same source, read and lowered into a while op. */
export function scripted(): Style {
  const fn = script(recur, { captures: { EPSILON, MAX_STEPS, DECAY } });
  return async (x, w) => values((await fn.callAsync(x, w)) as Tensor);
}

/** 4. Compile (tf.function): the trace hits the data-dependent loop, so it falls back to eager. */
export function compiled(): Style {
  const fn = compile(recur);
  return async (x, w) => values(tidy(() => fn(x, w)));
}
