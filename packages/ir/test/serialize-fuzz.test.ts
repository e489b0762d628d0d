import {
  add,
  argmax,
  broadcastTo,
  cast,
  concat,
  cond,
  crc32,
  deserializeGraph,
  Graph,
  type GraphData,
  gather,
  greater,
  KilnError,
  less,
  logSoftmax,
  matmul,
  mean,
  mul,
  OP_NAMES,
  oneHot,
  Prng,
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
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';

/**
 * Mutation fuzzing of deserializeGraph. The property: every input either loads as a graph that
 * passes verifyGraph (and saves and loads again unchanged), or is rejected with a
 * KilnError('serialization'). Any other exception, from the decoder, the verifier or an op's
 * inference, fails the test with the seed of the case, which replays it alone: runCase(seed).
 *
 * A random byte change almost always breaks the CRC, which would leave the decoder behind it
 * untested; so most cases mutate the payload and then repair the header (length and CRC), either
 * byte-wise or on the decoded msgpack tree (ids, dtypes, shapes, attributes, array lengths, types).
 */

// KILN_FUZZ_CASES and KILN_FUZZ_SEED run a longer or different campaign by hand.
const CASES = Number(process.env.KILN_FUZZ_CASES ?? 12_000);
const BASE_SEED = Number(process.env.KILN_FUZZ_SEED ?? 0x6b696c6e);

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

const sources = [serializeGraph(modelA()), serializeGraph(modelB()), serializeGraph(modelC())];

// ---------------------------------------------------------------- framing helpers

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true });

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x4b, 0x49, 0x4c, 0x4e], 0);
  view.setUint16(4, 1, true);
  view.setUint32(8, payload.length, true);
  view.setUint32(12, crc32(payload), true);
  out.set(payload, 16);
  return out;
}

const payloadOf = (bytes: Uint8Array) => bytes.subarray(16);

// ---------------------------------------------------------------- byte mutations

type ByteMutation = (rng: Prng, bytes: Uint8Array, note: string[]) => Uint8Array;

const BYTE_MUTATIONS: Record<string, ByteMutation> = {
  bitflip(rng, b, note) {
    const out = b.slice();
    const i = rng.int(0, out.length - 1);
    const bit = rng.int(0, 7);
    out[i]! ^= 1 << bit;
    note.push(`bit ${bit} of byte ${i}`);
    return out;
  },
  bitflips(rng, b, note) {
    const out = b.slice();
    const n = rng.int(2, 16);
    for (let k = 0; k < n; k++) out[rng.int(0, out.length - 1)]! ^= 1 << rng.int(0, 7);
    note.push(`${n} bits`);
    return out;
  },
  truncate(rng, b, note) {
    const n = rng.int(0, b.length - 1);
    note.push(`to ${n} bytes`);
    return b.slice(0, n);
  },
  splice(rng, b, note) {
    const donorIndex = rng.int(0, sources.length);
    const donor = donorIndex === sources.length ? b : sources[donorIndex]!;
    const at = rng.int(0, b.length);
    const cut = rng.int(0, Math.min(64, b.length - at));
    const from = rng.int(0, donor.length - 1);
    const len = rng.int(0, Math.min(64, donor.length - from));
    note.push(
      `[${at},+${cut}) <- ${donorIndex === sources.length ? 'self' : `graph ${donorIndex}`}[${from},+${len})`,
    );
    const out = new Uint8Array(b.length - cut + len);
    out.set(b.subarray(0, at), 0);
    out.set(donor.subarray(from, from + len), at);
    out.set(b.subarray(at + cut), at + len);
    return out;
  },
  overwrite(rng, b, note) {
    const out = b.slice();
    const n = rng.int(1, 8);
    for (let k = 0; k < n; k++)
      out[rng.int(0, out.length - 1)] = rng.pick([0, 0xff, 0xc0, 0xc1, 0x7f, 0x80, rng.int(0, 255)]);
    note.push(`${n} bytes`);
    return out;
  },
  insert(rng, b, note) {
    const at = rng.int(0, b.length);
    const extra = Uint8Array.from({ length: rng.int(1, 8) }, () => rng.int(0, 255));
    note.push(`${extra.length} at ${at}`);
    return Uint8Array.from([...b.subarray(0, at), ...extra, ...b.subarray(at)]);
  },
};

function headerMutation(rng: Prng, b: Uint8Array, note: string[]): Uint8Array {
  const out = b.slice();
  const view = new DataView(out.buffer);
  const field = rng.pick(['magic', 'version', 'flags', 'length', 'crc'] as const);
  const value = rng.pick([0, 1, 2, 7, 0xffff, 0xffffffff, rng.int(0, 0xffffffff)]);
  note.push(`${field} = ${value}`);
  if (field === 'magic') out[rng.int(0, 3)] = value & 0xff;
  else if (field === 'version') view.setUint16(4, value & 0xffff, true);
  else if (field === 'flags') view.setUint16(6, value & 0xffff, true);
  else if (field === 'length') view.setUint32(8, value >>> 0, true);
  else view.setUint32(12, value >>> 0, true);
  return out;
}

// ---------------------------------------------------------------- msgpack tree mutations

type Slot = { parent: unknown[] | Record<string, unknown>; key: number | string; path: string };

const isPlain = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === Object.prototype;

function slots(tree: unknown): Slot[] {
  const out: Slot[] = [];
  const walk = (x: unknown, path: string) => {
    if (Array.isArray(x)) {
      x.forEach((v, i) => {
        out.push({ parent: x, key: i, path: `${path}[${i}]` });
        walk(v, `${path}[${i}]`);
      });
    } else if (isPlain(x)) {
      for (const k of Object.keys(x)) {
        out.push({ parent: x, key: k, path: `${path}.${k}` });
        walk(x[k], `${path}.${k}`);
      }
    }
  };
  walk(tree, '$');
  return out;
}

function interestingValue(rng: Prng, counts: { values: number; nodes: number }): unknown {
  const { values, nodes } = counts;
  return rng.pick<() => unknown>([
    () => rng.pick([-1, 0, 1, 2, 3, values - 1, values, nodes, 16, 17, 1024, 4096]),
    () => rng.pick([2 ** 31, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, 2 ** 53, -(2 ** 53), 1e300]),
    () => rng.pick([0.5, 1.5, -0, Number.NaN, Infinity, -Infinity]),
    () => rng.pick([null, true, false]),
    () =>
      rng.pick([
        '',
        'float32',
        'int32',
        'bool',
        'x',
        'table',
        'dense1/w',
        '__proto__',
        'constructor',
        'a'.repeat(5000),
      ]),
    () => rng.pick(OP_NAMES),
    () => rng.pick([[], [0], [null], [-1], [1, 2, 3], [-1, -1], [[0, 1]], [[1, 2], [3]], [null, 4], ['a']]),
    () => Array.from({ length: rng.int(0, 20) }, () => rng.int(-2, 40)),
    () => ({}),
    () => ({ dtype: rng.int(0, 3), shape: [rng.int(0, 3)], data: new Uint8Array(rng.int(0, 12)) }),
    () =>
      rng.pick([
        new Uint8Array(0),
        new Float32Array(2),
        new Int32Array(1),
        new Float64Array([5]),
        new Float64Array(2),
      ]),
    () => rng.pick([2n ** 64n - 1n, -(2n ** 63n), new Date(0), new Set([1]), new Map([['a', 1]]), /x/]),
  ])();
}

function perturbNumber(rng: Prng, x: number): number {
  return rng.pick([x + 1, x - 1, x * 2, -x, x + 0.5, x * 1e9, x === 0 ? 1 : 0]);
}

const ATTR_NAMES = [
  'axis',
  'axes',
  'shape',
  'seed',
  'dtype',
  'name',
  'perm',
  'value',
  'depth',
  'keepDims',
  'extra',
  '__proto__',
];

/** One change somewhere in the tree. */
function mutateTree(rng: Prng, tree: unknown, note: string[]): unknown {
  const counts = {
    values: Array.isArray(tree) && Array.isArray(tree[1]) ? tree[1].length : 0,
    nodes: Array.isArray(tree) && Array.isArray(tree[0]) ? tree[0].length : 0,
  };
  const all = slots(tree);
  if (all.length === 0 || rng.bool(0.01)) {
    note.push('root replaced');
    return interestingValue(rng, counts);
  }
  const slot = rng.pick(all);
  const { parent, key } = slot;
  const get = () => (parent as Record<string | number, unknown>)[key];
  const set = (v: unknown) => {
    (parent as Record<string | number, unknown>)[key] = v;
  };
  const current = get();
  const kind = rng.int(0, 9);
  if (kind <= 2) {
    const v = interestingValue(rng, counts);
    note.push(`${slot.path} = ${show(v)}`);
    set(v);
  } else if (kind === 3 && typeof current === 'number') {
    const v = perturbNumber(rng, current);
    note.push(`${slot.path} ${current} -> ${v}`);
    set(v);
  } else if (kind === 4 && Array.isArray(parent)) {
    const op = rng.pick(['delete', 'duplicate', 'swap', 'truncate', 'push'] as const);
    note.push(`${slot.path}: ${op}`);
    const i = key as number;
    if (op === 'delete') parent.splice(i, 1);
    else if (op === 'duplicate') parent.splice(i, 0, structuredClone(parent[i]));
    else if (op === 'swap') {
      const j = rng.int(0, parent.length - 1);
      [parent[i], parent[j]] = [parent[j], parent[i]];
    } else if (op === 'truncate') parent.length = i;
    else parent.push(interestingValue(rng, counts));
  } else if (kind === 5 && !Array.isArray(parent)) {
    const op = rng.pick(['delete', 'add', 'rename'] as const);
    const name = rng.pick(ATTR_NAMES);
    note.push(`${slot.path}: ${op} ${name}`);
    const obj = parent as Record<string, unknown>;
    if (op === 'delete') delete obj[key as string];
    else if (op === 'add')
      Object.defineProperty(obj, name, {
        value: interestingValue(rng, counts),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else {
      const v = obj[key as string];
      delete obj[key as string];
      Object.defineProperty(obj, name, { value: v, enumerable: true, writable: true, configurable: true });
    }
  } else if (kind === 6) {
    // Graft a copy of another part of the graph here (a copy, so the tree never becomes cyclic).
    const other = rng.pick(all);
    note.push(`${slot.path} = copy of ${other.path}`);
    set(structuredClone((other.parent as Record<string | number, unknown>)[other.key]));
  } else if (kind === 7 && ArrayBuffer.isView(current)) {
    const bytes = new Uint8Array(rng.bool() ? current.byteLength : rng.int(0, 40));
    for (let i = 0; i < bytes.length; i++) bytes[i] = rng.bool(0.8) ? rng.int(0, 1) : rng.int(0, 255);
    note.push(`${slot.path} = ${bytes.length} random bytes`);
    set(bytes);
  } else {
    // Semantic edits that keep the structure valid, so the verifier and ops' inference see them.
    const nodes = Array.isArray(tree) && Array.isArray(tree[0]) ? (tree[0] as unknown[]) : [];
    const node = nodes.length ? nodes[rng.int(0, nodes.length - 1)] : undefined;
    if (!Array.isArray(node) || node.length !== 5) {
      note.push('no-op');
      return tree;
    }
    const edit = rng.pick(['op', 'attr', 'dtype', 'dim', 'input'] as const);
    if (edit === 'op') node[0] = rng.pick(OP_NAMES);
    else if (edit === 'attr' && isPlain(node[2])) {
      const names = Object.keys(node[2]);
      const name = names.length && rng.bool(0.8) ? rng.pick(names) : rng.pick(ATTR_NAMES);
      if (name !== '__proto__') node[2][name] = interestingValue(rng, counts);
    } else if (edit === 'dtype' || edit === 'dim') {
      const values = (tree as unknown[])[1];
      const v = Array.isArray(values) && values.length ? values[rng.int(0, values.length - 1)] : undefined;
      if (Array.isArray(v) && Array.isArray(v[1])) {
        if (edit === 'dtype') v[0] = rng.int(0, 2);
        else if (v[1].length) v[1][rng.int(0, v[1].length - 1)] = rng.pick([null, 0, 1, 2, 3, 4, 8, 9]);
        else v[1].push(rng.int(0, 4));
      }
    } else if (edit === 'input' && Array.isArray(node[1])) {
      if (node[1].length && rng.bool(0.7))
        node[1][rng.int(0, node[1].length - 1)] = rng.int(0, counts.values - 1);
      else if (rng.bool()) node[1].push(rng.int(0, counts.values - 1));
      else node[1].pop();
    }
    note.push(`semantic ${edit} on node ${nodes.indexOf(node)}`);
  }
  return tree;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Uint8Array).length})`;
  try {
    return JSON.stringify(v)?.slice(0, 40) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

// ---------------------------------------------------------------- one case

type Family = 'frame bytes' | 'header' | 'payload bytes' | 'msgpack tree';

interface CaseResult {
  readonly family: Family;
  readonly note: string;
  readonly outcome: string; // 'loaded' or the rejection reason
  readonly failure?: string;
}

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

function mutate(rng: Prng, note: string[]): { family: Family; bytes: Uint8Array } {
  const source = rng.pick(sources);
  note.push(`graph ${sources.indexOf(source)}`);
  const r = rng.next();
  if (r < 0.2) {
    const name = rng.pick(Object.keys(BYTE_MUTATIONS));
    note.push(name);
    return { family: 'frame bytes', bytes: BYTE_MUTATIONS[name]!(rng, source, note) };
  }
  if (r < 0.25) return { family: 'header', bytes: headerMutation(rng, source, note) };
  if (r < 0.5) {
    let payload = payloadOf(source);
    const rounds = rng.int(1, 3);
    for (let k = 0; k < rounds; k++) {
      const name = rng.pick(Object.keys(BYTE_MUTATIONS));
      note.push(name);
      payload = BYTE_MUTATIONS[name]!(rng, payload.length ? payload : Uint8Array.of(0), note);
    }
    return { family: 'payload bytes', bytes: frame(payload) };
  }
  let tree = unpackr.unpack(payloadOf(source));
  const rounds = rng.int(1, 3);
  for (let k = 0; k < rounds; k++) tree = mutateTree(rng, tree, note);
  return { family: 'msgpack tree', bytes: frame(packr.pack(tree)) };
}

/** The first error in the cause chain that kiln did not raise on purpose (msgpackr's aside). */
function foreignCause(e: KilnError): string | undefined {
  if (/^payload is not valid msgpack/.test(e.message)) return undefined;
  for (let c: unknown = e.cause; c !== undefined; c = (c as { cause?: unknown }).cause) {
    if (!(c instanceof KilnError)) {
      return c instanceof Error ? (c.stack ?? c.message).split('\n').slice(0, 4).join(' | ') : String(c);
    }
  }
  return undefined;
}

function runCase(seed: number): CaseResult {
  const rng = new Prng(seed);
  const note: string[] = [];
  const { family, bytes } = mutate(rng, note);
  const what = `seed 0x${seed.toString(16)} (${family}: ${note.join('; ')})`;
  let graph: GraphData;
  try {
    graph = deserializeGraph(bytes);
  } catch (e) {
    if (e instanceof KilnError && e.code === 'serialization') {
      // The verifier turns whatever an op's attribute parsing or inference throws into a 'verify'
      // error; a TypeError or RangeError down that chain is a bug there, not a verdict on the input.
      const crash = foreignCause(e);
      if (crash)
        return { family, note: what, outcome: 'crash', failure: `${what}: ${e.message}; caused by ${crash}` };
      const reason = REASONS.find(([, re]) => re.test(e.message))?.[0];
      if (reason) return { family, note: what, outcome: reason };
      return { family, note: what, outcome: 'other', failure: `${what}: unclassified message: ${e.message}` };
    }
    const shown = e instanceof Error ? (e.stack ?? e.message).split('\n').slice(0, 4).join(' | ') : String(e);
    return { family, note: what, outcome: 'crash', failure: `${what}: threw ${shown}` };
  }
  try {
    verifyGraph(graph);
    const again = serializeGraph(graph);
    const reloaded = deserializeGraph(again);
    if (printGraph(reloaded) !== printGraph(graph)) throw new Error('reloaded graph prints differently');
    const third = serializeGraph(reloaded);
    if (third.length !== again.length || third.some((b, i) => b !== again[i]))
      throw new Error('bytes not stable');
  } catch (e) {
    return { family, note: what, outcome: 'loaded', failure: `${what}: loaded, then ${String(e)}` };
  }
  return { family, note: what, outcome: 'loaded' };
}

// ---------------------------------------------------------------- the test

describe('deserializeGraph under mutation', () => {
  it(`loads or rejects cleanly on ${CASES} mutated inputs`, () => {
    const started = performance.now();
    const outcomes = new Map<string, number>();
    const byFamily = new Map<string, Map<string, number>>();
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const seed = (BASE_SEED + Math.imul(i, 0x9e3779b9)) >>> 0;
      const result = runCase(seed);
      outcomes.set(result.outcome, (outcomes.get(result.outcome) ?? 0) + 1);
      const fam = byFamily.get(result.family) ?? new Map<string, number>();
      fam.set(result.outcome, (fam.get(result.outcome) ?? 0) + 1);
      byFamily.set(result.family, fam);
      if (result.failure) failures.push(result.failure);
    }
    const ms = performance.now() - started;
    const table = [...byFamily].map(
      ([family, counts]) =>
        `  ${family.padEnd(14)} ${[...counts]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
    );
    console.log(
      `serialize fuzz: ${CASES} cases in ${(ms / 1000).toFixed(1)} s; ` +
        `${[...outcomes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}\n${table.join('\n')}`,
    );
    expect(failures.slice(0, 20)).toEqual([]);
    // The fuzzer must actually reach each layer of the decoder, or a pass would prove little.
    for (const layer of ['checksum', 'msgpack', 'malformed', 'verification', 'loaded']) {
      expect(outcomes.get(layer) ?? 0, `cases that ended in '${layer}'`).toBeGreaterThan(200);
    }
  });

  it('replays a single case from its seed', () => {
    const seed = (BASE_SEED + Math.imul(17, 0x9e3779b9)) >>> 0;
    expect(runCase(seed)).toEqual(runCase(seed));
  });
});
