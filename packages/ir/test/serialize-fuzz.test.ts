import {
  add,
  argmax,
  broadcastTo,
  cast,
  concat,
  cond,
  deserializeGraph,
  Graph,
  type GraphData,
  gather,
  greater,
  isRegion,
  KilnError,
  less,
  logSoftmax,
  matmul,
  mean,
  mul,
  OP_NAMES,
  oneHot,
  type Prng,
  pad,
  printGraph,
  randomNormal,
  randomUniform,
  relu,
  reshape,
  serializeGraph,
  slice,
  softmax,
  sum,
  transpose,
  verifyGraph,
  where,
  whileLoop,
} from '@kiln/ir';
import {
  attempt,
  type CaseVerdict,
  caseSeed,
  confusingValue,
  describeError,
  type FuzzTarget,
  formatCampaign,
  fuzzSettings,
  mutant,
  runCampaign,
  stackDependence,
  type TreeMutation,
} from '@kiln/ir/testing';
import { describe, expect, it } from 'vitest';

/**
 * Mutation fuzzing of deserializeGraph, with the shared mutators of @kiln/ir/testing. The property:
 * every input either loads as a graph that passes verifyGraph (and saves and loads again
 * unchanged, with no dimension a size could not be), or is rejected with a
 * KilnError('serialization') whose message stays short (MAX_MESSAGE); each case within BOUND_MS.
 * Any other exception, from the decoder, the verifier or an op's inference, fails the test with
 * the seed of the case, which replays it alone: runCase(seed).
 *
 * Most cases mutate the payload and then repair the header (length and CRC), so the damage reaches
 * past the checksum: byte-wise, or on the decoded msgpack tree, where besides the generic edits
 * (type confusion, -0 for 0, resized bytes, array and key edits, grafts) graph-aware ones change
 * ops, attributes, dtypes, dimensions and input ids while keeping the structure valid.
 */

// KILN_FUZZ_CASES and KILN_FUZZ_SEED run a longer or different campaign by hand; a failure's seed
// with KILN_FUZZ_CASES=1 replays that case alone.
const { cases: CASES, seed: SEED } = fuzzSettings(process.env, { cases: 6000, seed: 0x6b696c6e });
const BOUND_MS = 1000;
/** A rejection says what was wrong without carrying the input: its message is at most this long. */
const MAX_MESSAGE = 1000;

// ---------------------------------------------------------------- graphs to mutate

function modelA(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const w1 = g.variable('dense1/w', randomNormal(g, [4, 8], { seed: 1, stddev: 0.5 }));
  const b1 = g.variable(
    'dense1/b',
    g.constant({
      dtype: 'float32',
      shape: [8],
      data: Float32Array.from([Number.NaN, -0, Infinity, -1, 1.5, 0, 2, 3]),
    }),
  );
  const h = g.scope('dense1', () => relu(add(matmul(x, w1), b1)));
  const w2 = g.variable('dense2/w', randomNormal(g, [8, 3], { seed: 2 }));
  const probs = g.scope('head', () => softmax(matmul(h, w2)));
  const extra = g.constant({ dtype: 'float32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
  g.output('probs', probs);
  g.output('flat', reshape(probs, [-1]));
  g.output('stacked', concat([probs, extra, probs], 0));
  g.output('ints', add(g.constant({ dtype: 'int32', shape: [2], data: Int32Array.from([-5, 7]) }), 1));
  g.output('mask', g.constant({ dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) }));
  return g;
}

/** A second graph with many attribute kinds, so mutations reach many ops' inference. */
function modelB(): Graph {
  const g = new Graph();
  const ids = g.placeholder('int32', [null], 'ids');
  const table = g.variable('table', randomUniform(g, [10, 4], { seed: 9, low: -1, high: 1 }));
  const emb = gather(table, ids, 0);
  const hot = oneHot(ids, 10, { onValue: 2, offValue: -0 });
  const padded = pad(emb, [
    [1, 0],
    [0, 2],
  ]);
  const cut = slice(padded, [0, 1], [-1, 4]);
  const t = transpose(cut, [1, 0]);
  const total = sum(t, [1], { keepDims: true });
  const avg = mean(hot, null);
  const best = argmax(hot, -1);
  const positive = cast(relu(emb), 'bool');
  const chosen = where(positive, emb, 0);
  const wide = broadcastTo(
    g.constant({ dtype: 'float32', shape: [1, 4], data: new Float32Array(4) }),
    [3, 4],
  );
  const step = g.placeholder('int32', [], 'step');
  const noise = randomNormal(g, [3, 4], { seed: 4, offset: step });
  g.assign(table, add(table, 0.5));
  g.output('total', total);
  g.output('avg', avg);
  g.output('best', best);
  g.output('chosen', logSoftmax(chosen, 1));
  g.output('wide', add(wide, noise));
  return g;
}

/** Structured control flow: a cond nested in a while body, a while nested in a cond branch. */
function modelC(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 3], 'x');
  const n = g.placeholder('int32', [], 'n');
  const [y, k] = whileLoop(
    g,
    [x, n],
    (_, i) => less(i!, 10),
    (v, i) => {
      const [w] = cond(
        v.graph,
        greater(sum(v), 0),
        [v, i!],
        (a) => [mul(a, 0.5)],
        (a, j) => [add(a, cast(j!, 'float32'))],
        'step',
      );
      return [w!, add(i!, 1)];
    },
    { name: 'loop', maxIterations: 100 },
  );
  const [z] = cond(
    g,
    greater(k!, 3),
    [y!],
    (a) =>
      whileLoop(
        a.graph,
        [a],
        (b) => greater(sum(b), 1),
        (b) => [mul(b, 0.25)],
      ),
    (a) => [softmax(a)],
    'pick',
  );
  g.output('y', z!);
  g.output('k', k!);
  return g;
}

/** Sizes of 0 (an empty batch, an empty constant), where a -0 could pass for one. */
function modelD(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [0, 3], 'x');
  const empty = g.constant({ dtype: 'float32', shape: [0, 3], data: new Float32Array(0) });
  const y = add(x, empty);
  g.output('y', y);
  g.output('total', sum(y, [0]));
  g.output('flat', reshape(y, [0]));
  return g;
}

const sources = [modelA(), modelB(), modelC(), modelD()].map(serializeGraph);

// ---------------------------------------------------------------- what the mutators know of graphs

/** Values that mean something in a graph payload: ids in and out of range, op and dtype names. */
function graphValue(rng: Prng): unknown {
  return rng.pick<() => unknown>([
    () => rng.pick([-1, 0, 1, 2, 3, 16, 17, 1024, 4096, rng.int(0, 60)]),
    () => rng.pick(['float32', 'int32', 'bool', 'x', 'table', 'dense1/w']),
    () => rng.pick(OP_NAMES),
    () => rng.pick([[0], [null], [-1], [-1, -1], [[0, 1]], [[1, 2], [3]], [null, 4], ['a']]),
    () => ({ dtype: rng.int(0, 3), shape: [rng.int(0, 3)], data: new Uint8Array(rng.int(0, 12)) }),
    () => ({ nodes: [], values: [], inputs: [], results: [] }),
  ])();
}

// biome-ignore format: a list of names reads better packed
const ATTR_NAMES = ['axis', 'axes', 'shape', 'seed', 'dtype', 'name', 'perm', 'value', 'depth', 'keepDims', 'extra', 'nodes', 'values', 'inputs', 'results', 'data'];

/**
 * Edits that keep the payload's structure valid (a node's op, an attribute, a value's dtype or a
 * dimension, an input id), so they get past the structural checks to the verifier and to each
 * op's attribute parsing and inference.
 */
const semanticEdit: TreeMutation = (rng, tree, notes) => {
  const nodes = Array.isArray(tree) && Array.isArray(tree[0]) ? (tree[0] as unknown[]) : [];
  const values = Array.isArray(tree) && Array.isArray(tree[1]) ? (tree[1] as unknown[]) : [];
  const node = nodes.length ? nodes[rng.int(0, nodes.length - 1)] : undefined;
  if (!Array.isArray(node) || node.length < 5) return tree;
  const edit = rng.pick(['op', 'attr', 'dtype', 'dim', 'input'] as const);
  notes.push(`semantic ${edit} on node ${nodes.indexOf(node)}`);
  if (edit === 'op') node[0] = rng.pick(OP_NAMES);
  else if (edit === 'attr' && isPlain(node[2])) {
    const names = Object.keys(node[2]);
    const name = names.length && rng.bool(0.8) ? rng.pick(names) : rng.pick(ATTR_NAMES);
    node[2][name] = rng.bool() ? graphValue(rng) : confusingValue(rng, node[2][name]);
  } else if (edit === 'dtype' || edit === 'dim') {
    const v = values.length ? values[rng.int(0, values.length - 1)] : undefined;
    if (Array.isArray(v) && Array.isArray(v[1])) {
      if (edit === 'dtype') v[0] = rng.int(0, 2);
      else if (v[1].length) v[1][rng.int(0, v[1].length - 1)] = rng.pick([null, 0, -0, 1, 2, 3, 4, 8, 9]);
      else v[1].push(rng.int(0, 4));
    }
  } else if (edit === 'input' && Array.isArray(node[1])) {
    if (node[1].length && rng.bool(0.7))
      node[1][rng.int(0, node[1].length - 1)] = rng.int(0, values.length - 1);
    else if (rng.bool()) node[1].push(rng.int(0, values.length - 1));
    else node[1].pop();
  }
  return tree;
};

const isPlain = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === Object.prototype;

const target: FuzzTarget = {
  sources,
  framed: true,
  values: graphValue,
  keys: ATTR_NAMES,
  // Twice: structure-preserving edits are what reach the verifier and the ops.
  treeMutations: [semanticEdit, semanticEdit],
};

// ---------------------------------------------------------------- one case

const REASONS: [string, RegExp][] = [
  ['too short', /^not a kiln graph \(too short\)/],
  ['bad magic', /^not a kiln graph \(bad magic\)/],
  ['version', /^format version \d+ is not supported/],
  ['flags', /^unsupported header flags/],
  ['truncated', /^truncated: /],
  ['trailing bytes', /^trailing bytes: /],
  ['checksum', /^checksum mismatch \(corrupted bytes\)/],
  ['msgpack', /^payload is not valid msgpack: /],
  ['malformed', /^malformed payload: /],
  ['verification', /^graph fails verification: /],
];

/** The first error in the cause chain that kiln did not raise on purpose (msgpackr's aside). */
function foreignCause(e: KilnError): string | undefined {
  if (/^payload is not valid msgpack/.test(e.message)) return undefined;
  for (let c: unknown = e.cause; c !== undefined; c = (c as { cause?: unknown }).cause) {
    if (!(c instanceof KilnError)) return describeError(c);
  }
  return undefined;
}

function runCase(seed: number): CaseVerdict {
  const { bytes, family, notes } = mutant(seed, target);
  const what = `${family}: ${notes.join('; ')}`;
  const result = attempt(() => deserializeGraph(bytes), 'serialization');
  const unstable = stackDependence(notes, result, () =>
    attempt(() => deserializeGraph(bytes), 'serialization'),
  );
  if (unstable) return { outcome: 'stack-dependent', failure: `${what}: ${unstable}` };
  if (result.kind === 'crash') return { outcome: 'crash', failure: `${what}: threw ${result.description}` };
  if (result.kind === 'rejected') {
    const e = result.error;
    if (e.message.length > MAX_MESSAGE)
      return {
        outcome: 'long message',
        failure: `${what}: a ${e.message.length}-character message: ${e.message.slice(0, 150)}`,
      };
    // The verifier turns whatever an op's attribute parsing or inference throws into a 'verify'
    // error; a TypeError or RangeError down that chain is a bug there, not a verdict on the input.
    const crash = foreignCause(e);
    if (crash) return { outcome: 'crash', failure: `${what}: ${e.message}; caused by ${crash}` };
    const reason = REASONS.find(([, re]) => re.test(e.message))?.[0];
    return reason
      ? { outcome: reason }
      : { outcome: 'other', failure: `${what}: unclassified message: ${e.message}` };
  }
  const graph = result.value;
  const odd = oddDimension(graph);
  if (odd) return { outcome: 'loaded', failure: `${what}: loaded with ${odd}` };
  try {
    verifyGraph(graph);
    const again = serializeGraph(graph);
    const reloaded = deserializeGraph(again);
    if (printGraph(reloaded) !== printGraph(graph)) throw new Error('reloaded graph prints differently');
    const third = serializeGraph(reloaded);
    if (third.length !== again.length || third.some((b, i) => b !== again[i]))
      throw new Error('bytes not stable');
  } catch (e) {
    return { outcome: 'loaded', failure: `${what}: loaded, then ${describeError(e)}` };
  }
  return { outcome: 'loaded' };
}

/**
 * A dimension that is not a size (a safe integer, not -0) or nil, in the graph or its regions, or
 * in a constant tensor: one the verifier lets through, since it compares sizes with ===.
 */
function oddDimension(graph: Pick<GraphData, 'nodes' | 'values'>): string | undefined {
  const odd = (d: unknown) =>
    d !== null && (!Number.isSafeInteger(d) || (d as number) < 0 || Object.is(d, -0));
  for (const v of graph.values) {
    const d = v.type.shape.find(odd);
    if (d !== undefined) return `dimension ${Object.is(d, -0) ? '-0' : String(d)} in %${v.id}`;
  }
  for (const node of graph.nodes)
    for (const attr of Object.values(node.attrs)) {
      const inner = isRegion(attr)
        ? oddDimension(attr)
        : isTensorValue(attr) && attr.shape.some(odd)
          ? `a constant of shape [${attr.shape.map((d) => (Object.is(d, -0) ? '-0' : d))}]`
          : undefined;
      if (inner) return `${inner} (in node #${node.id})`;
    }
  return undefined;
}

const isTensorValue = (x: unknown): x is { shape: unknown[] } =>
  typeof x === 'object' && x !== null && Array.isArray((x as { shape?: unknown }).shape) && 'data' in x;

// ---------------------------------------------------------------- the test

describe('deserializeGraph under mutation', () => {
  it(`loads or rejects cleanly, each of ${CASES} mutated inputs within ${BOUND_MS} ms`, () => {
    const report = runCampaign({ cases: CASES, seed: SEED, boundMs: BOUND_MS, run: runCase });
    console.log(formatCampaign('graph fuzz', report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    // The fuzzer must actually reach each layer of the decoder, or a pass would prove little.
    if (CASES >= 1000) {
      for (const layer of ['checksum', 'msgpack', 'malformed', 'verification', 'loaded']) {
        expect(report.outcomes.get(layer) ?? 0, `cases that ended in '${layer}'`).toBeGreaterThan(CASES / 60);
      }
    }
  });

  it('replays a single case from its seed', () => {
    const seed = caseSeed(SEED, 17);
    expect(mutant(seed, target)).toEqual(mutant(seed, target));
    expect(runCase(seed)).toEqual(runCase(seed));
  });
});
