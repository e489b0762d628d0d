import {
  add,
  cast,
  cond,
  crc32,
  deserializeGraph,
  div,
  EXECUTOR_OPS,
  equal,
  Graph,
  type GraphData,
  greater,
  interpret,
  KilnError,
  less,
  MAX_REGION_DEPTH,
  mul,
  neg,
  OPS,
  Prng,
  printGraph,
  type RefTensor,
  type Region,
  refTensor,
  regionCost,
  relu,
  reshape,
  type SymbolicTensor,
  serializeGraph,
  sub,
  sum,
  tensor,
  verifyGraph,
  whileLoop,
} from '@kiln/ir';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';

// ---------------------------------------------------------------- helpers

const f32 = (values: number[], shape = [values.length]) => refTensor('float32', shape, values);
const i32 = (value: number) => refTensor('int32', [], [value]);
const bool = (value: boolean) => refTensor('bool', [], [value ? 1 : 0]);

/** Runs every node of `g` with the reference interpreter, feeding placeholders by name. */
function run(
  g: GraphData,
  feeds: Record<string, RefTensor>,
  fetches: readonly SymbolicTensor[],
): RefTensor[] {
  const bound = new Map<number, RefTensor>();
  for (const node of g.nodes) {
    if (node.op !== 'placeholder') continue;
    const feed = feeds[node.attrs.name as string];
    if (!feed) throw new Error(`no feed for ${String(node.attrs.name)}`);
    bound.set(node.outputs[0]!, feed);
  }
  const env = interpret(
    g,
    g.nodes.map((n) => n.id),
    bound,
  );
  return fetches.map((t) => env.get(t.id)!);
}

const plain = (g: GraphData): GraphData => ({
  nodes: g.nodes,
  values: g.values,
  initializers: g.initializers,
  outputs: g.outputs,
});

function errorOf(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected an error');
}

/** while sum(x) >= 1: x = x / 2; n = n + 1 — the loop the tests check against plain JS. */
function halvingLoop(g: Graph, x: SymbolicTensor): SymbolicTensor[] {
  const zero = g.constant({ dtype: 'int32', shape: [], data: new Int32Array([0]) }, 'zero');
  return whileLoop(
    g,
    [x, zero],
    (v) => greater(sum(v), 1, 'more'),
    (v, n) => [div(v, 2, 'halve'), add(n!, 1, 'count')],
    { name: 'loop' },
  );
}

function halvingInJs(values: readonly number[]): { x: number[]; n: number } {
  let x = values.map(Math.fround);
  let n = 0;
  // The reference rounds every op's result to float32; so does this loop.
  while (Math.fround(x.reduce((a, b) => a + b, 0)) > 1) {
    x = x.map((v) => Math.fround(v / 2));
    n++;
  }
  return { x, n };
}

/**
 * A graph with a cond nested inside a while body (Collatz steps: n = n even ? n / 2 : 3n + 1,
 * until n == 1, counting steps), and a while nested inside a cond branch.
 */
function nestedModel(): { g: Graph; steps: SymbolicTensor; final: SymbolicTensor; picked: SymbolicTensor } {
  const g = new Graph();
  const start = g.placeholder('int32', [], 'n');
  const zero = g.constant({ dtype: 'int32', shape: [], data: new Int32Array([0]) });
  const [final, steps] = whileLoop(
    g,
    [start, zero],
    (n) => greater(n, 1),
    (n, k) => {
      const even = equal(sub(n, mul(div(n, 2), 2)), 0, 'even');
      const [next] = cond(
        n.graph,
        even,
        [n],
        (m) => [div(m, 2)],
        (m) => [add(mul(m, 3), 1)],
        'step',
      );
      return [next!, add(k!, 1)];
    },
    { name: 'collatz' },
  );
  const x = g.placeholder('float32', [3], 'x');
  const [picked] = cond(
    g,
    greater(sum(x), 0),
    [x],
    (v) => halvingLoop(v.graph, v).slice(0, 1),
    (v) => [neg(v)],
    'pick',
  );
  g.output('final', final!);
  g.output('steps', steps!);
  g.output('picked', picked!);
  return { g, steps: steps!, final: final!, picked: picked! };
}

function collatzSteps(n: number): number {
  let k = 0;
  while (n > 1) {
    n = n % 2 === 0 ? n / 2 : 3 * n + 1;
    k++;
  }
  return k;
}

// ---------------------------------------------------------------- the ops

describe('cond and while ops', () => {
  it('are executor ops, defined once like every other op', () => {
    expect(EXECUTOR_OPS.has('cond')).toBe(true);
    expect(EXECUTOR_OPS.has('while')).toBe(true);
    expect(OPS.cond.kind).toBe('control');
    expect(OPS.while.kind).toBe('control');
    expect(OPS.cond.cases(new Prng(1))).toEqual([]);
  });

  it('cond builds both branches as regions and types its results', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 3], 'x');
    const p = g.placeholder('bool', [], 'p');
    const [y, s] = cond(
      g,
      p,
      [x],
      (v) => [relu(v), sum(v)],
      (v) => [neg(v), sum(mul(v, v))],
      'branch',
    );
    expect(y!.type).toEqual({ dtype: 'float32', shape: [null, 3] });
    expect(s!.type).toEqual({ dtype: 'float32', shape: [] });
    expect(y!.node.op).toBe('cond');
    expect(y!.node.inputs).toEqual([p.id, x.id]);
    const region = y!.node.attrs.then as Region;
    expect(region.inputs).toHaveLength(1);
    expect(region.results).toHaveLength(2);
    expect(region.nodes[0]!.attrs.name).toBe('arg0');
    verifyGraph(g);

    const feedX = f32([1, -2, 3, -4, 5, -6], [2, 3]);
    const [yt, st] = run(g, { x: feedX, p: bool(true) }, [y!, s!]);
    expect(Array.from(yt!.data)).toEqual([1, 0, 3, 0, 5, 0]);
    expect(st!.data[0]).toBe(-3);
    const [yf, sf] = run(g, { x: feedX, p: bool(false) }, [y!, s!]);
    expect(Array.from(yf!.data)).toEqual([-1, 2, -3, 4, -5, 6]);
    expect(sf!.data[0]).toBe(91);
  });

  it('cond leaves a dimension unknown where the branches differ', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const p = g.placeholder('bool', [], 'p');
    const [y] = cond(
      g,
      p,
      [x],
      (v) => [reshape(v, [2, 2])],
      (v) => [reshape(v, [1, 4])],
    );
    expect(y!.shape).toEqual([null, null]);
    const [a] = run(g, { x: f32([1, 2, 3, 4]), p: bool(false) }, [y!]);
    expect(a!.shape).toEqual([1, 4]);
  });

  it('whileLoop carries values with stable types and matches a JavaScript loop on random inputs', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [5], 'x');
    const [out, count] = halvingLoop(g, x);
    expect(out!.type).toEqual({ dtype: 'float32', shape: [5] });
    expect(count!.type).toEqual({ dtype: 'int32', shape: [] });
    verifyGraph(g);

    const rng = new Prng(7);
    const iterations = new Set<number>();
    for (let trial = 0; trial < 40; trial++) {
      const scale = 10 ** rng.int(-1, 4);
      const values = Array.from({ length: 5 }, () => Math.abs(rng.normal()) * scale);
      const want = halvingInJs(values);
      const [gotX, gotN] = run(g, { x: f32(values) }, [out!, count!]);
      expect(gotN!.data[0]).toBe(want.n);
      expect(Array.from(gotX!.data)).toEqual(want.x);
      iterations.add(want.n);
    }
    // The inputs exercise loops of many lengths, zero included.
    expect(iterations.size).toBeGreaterThan(5);
    expect(iterations.has(0)).toBe(true);
  });

  it('stops after maxIterations when one is given', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const [out] = whileLoop(
      g,
      [x],
      (v) => greater(sum(v), 1),
      (v) => [div(v, 2)],
      { maxIterations: 3 },
    );
    const [got] = run(g, { x: f32([800, 800]) }, [out!]);
    expect(Array.from(got!.data)).toEqual([100, 100]);
  });

  it('nests a cond inside a while body and a while inside a cond branch', () => {
    const { g, steps, final, picked } = nestedModel();
    verifyGraph(g);
    for (const n of [1, 2, 3, 6, 7, 27, 97]) {
      const [k, f] = run(g, { n: i32(n), x: f32([1, 1, 1]) }, [steps, final]);
      expect(k!.data[0]).toBe(collatzSteps(n));
      expect(f!.data[0]).toBe(Math.min(n, 1));
    }
    const [positive] = run(g, { n: i32(1), x: f32([4, 4, 0]) }, [picked]);
    expect(Array.from(positive!.data)).toEqual([0.5, 0.5, 0]);
    const [negative] = run(g, { n: i32(1), x: f32([-4, 1, 0]) }, [picked]);
    expect(Array.from(negative!.data)).toEqual([4, -1, -0]);
  });

  it('estimates cost from the regions', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [5], 'x');
    const [out] = halvingLoop(g, x);
    const node = out!.node;
    const cost = OPS.while.cost(
      [
        { dtype: 'float32', shape: [5] },
        { dtype: 'int32', shape: [] },
      ],
      [],
      node.attrs as never,
    );
    const body = regionCost(node.attrs.body as Region);
    expect(body.flops).toBeGreaterThan(0);
    expect(cost.flops).toBeGreaterThan(body.flops);
  });
});

// ---------------------------------------------------------------- printing

describe('printing regions', () => {
  it('prints one line per node, with regions nested and indented under their node', () => {
    const { g } = nestedModel();
    const text = printGraph(g);
    const lines = text.split('\n');
    const loop = lines.findIndex((l) =>
      /^ {2}%\d+, %\d+ = while\(%\d+, %\d+\) \{maxIterations=-1\} : i32\[\], i32\[\] {2}# collatz$/.test(l),
    );
    expect(loop, text).toBeGreaterThan(0);
    expect(lines[loop + 1]).toMatch(/^ {4}cond\(%0: i32\[\], %1: i32\[\]\) \{$/);
    const body = lines.findIndex((l) => /^ {4}body\(%0: i32\[\], %1: i32\[\]\) \{$/.test(l));
    expect(body).toBeGreaterThan(loop);
    // The cond inside the body, and its branches, one level deeper each.
    expect(lines.some((l) => /^ {6}%\d+ = cond\(%\d+, %\d+\) : i32\[\] {2}# step$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {8}then\(%0: i32\[\]\) \{$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {8}else\(%0: i32\[\]\) \{$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {10}return %\d+$/.test(l))).toBe(true);
    // Every node of every region has its line: count them.
    const countNodes = (graph: GraphData, isRegion: boolean): number =>
      graph.nodes.reduce((n, node) => {
        if (isRegion && node.op === 'placeholder') return n;
        let inner = 0;
        for (const v of Object.values(node.attrs)) {
          if (typeof v === 'object' && v !== null && 'results' in v) inner += countNodes(v as Region, true);
        }
        return n + 1 + inner;
      }, 0);
    const nodeLines = lines.filter((l) => / : /.test(l) || /^\s*%\d+( |,)/.test(l));
    expect(nodeLines).toHaveLength(countNodes(g, false));
    // Region attributes never appear inline.
    expect(text).not.toMatch(/then=|else=|body=|cond=/);
  });
});

// ---------------------------------------------------------------- verification

describe('verification of control flow', () => {
  const typed = (g: Graph, dtype: 'float32' | 'int32', shape: number[], name: string) =>
    g.placeholder(dtype, shape, name);

  it('rejects branches whose result dtypes differ, naming the branch, index and both types', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [3], 'x');
    const p = g.placeholder('bool', [], 'p');
    const e = errorOf(() =>
      cond(
        g,
        p,
        [x],
        (v) => [v, v],
        (v) => [v, cast(v, 'int32')],
        'mixed',
      ),
    );
    expect(e.message).toMatch(
      /node #\d+ \(cond 'mixed'\): cond: result 1: the then branch gives f32\[3\], the else branch i32\[3\]/,
    );
  });

  it('rejects branches whose result ranks differ', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const p = g.placeholder('bool', [], 'p');
    const e = errorOf(() =>
      cond(
        g,
        p,
        [x],
        (v) => [reshape(v, [2, 2])],
        (v) => [v],
      ),
    );
    expect(e.message).toMatch(/result 0: the then branch gives f32\[2,2\], the else branch f32\[4\]/);
  });

  it('rejects branches that return different numbers of values', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const p = g.placeholder('bool', [], 'p');
    const e = errorOf(() =>
      cond(
        g,
        p,
        [x],
        (v) => [v, v],
        (v) => [v],
      ),
    );
    expect(e.message).toMatch(/the then branch returns 2 values .*, the else branch 1/);
  });

  it.each([
    ['a float predicate', 'float32', []],
    ['a non-scalar predicate', 'bool', [2]],
  ] as const)('rejects %s', (_, dtype, shape) => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const p = g.placeholder(dtype, [...shape], 'p');
    const e = errorOf(() =>
      cond(
        g,
        p,
        [x],
        (v) => [v],
        (v) => [v],
      ),
    );
    expect(e.message).toMatch(/cond: the predicate must be a bool scalar \(bool\[\]\), got/);
  });

  it('rejects a body that changes a carried type', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const e = errorOf(() =>
      whileLoop(
        g,
        [x],
        (v) => greater(sum(v), 1),
        (v) => [reshape(v, [2, 2])],
        { name: 'grow' },
      ),
    );
    expect(e.message).toMatch(
      /node #\d+ \(while 'grow'\): while: carried value 0 enters the body as f32\[4\] but the body returns f32\[2,2\]; a loop-carried value must keep its type/,
    );
    const f = errorOf(() =>
      whileLoop(
        g,
        [x],
        (v) => greater(sum(v), 1),
        (v) => [cast(v, 'int32')],
      ),
    );
    expect(f.message).toMatch(/enters the body as f32\[4\] but the body returns i32\[4\]/);
  });

  it('rejects a cond region that does not return one bool scalar', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const e = errorOf(() =>
      whileLoop(
        g,
        [x],
        (v) => sum(v),
        (v) => [v],
      ),
    );
    expect(e.message).toMatch(
      /while: the cond region must return one bool scalar \(bool\[\]\), it returns \(f32\[\]\)/,
    );
    const f = errorOf(() =>
      whileLoop(
        g,
        [x],
        (v) => greater(v, 0),
        (v) => [v],
      ),
    );
    expect(f.message).toMatch(/it returns \(bool\[4\]\)/);
  });

  it('says a region reads only its arguments when a branch uses an outer tensor', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const y = typed(g, 'float32', [4], 'y');
    const p = g.placeholder('bool', [], 'p');
    const e = errorOf(() =>
      cond(
        g,
        p,
        [x],
        (v) => [add(v, y)],
        (v) => [v],
        'leaky',
      ),
    );
    expect(e.message).toMatch(
      /^cond 'leaky': then branch: add: inputs come from different graphs.*pass outer tensors in as operands/,
    );
    const f = errorOf(() =>
      cond(
        g,
        p,
        [x],
        () => [y],
        (v) => [v],
        'leaky',
      ),
    );
    expect(f.message).toMatch(/result 0 .* is not computed inside the region/);
  });

  it('passes errors thrown by region functions on with the node context', () => {
    const g = new Graph();
    const x = typed(g, 'float32', [4], 'x');
    const e = errorOf(() =>
      whileLoop(
        g,
        [x],
        (v) => greater(sum(v), 1),
        () => {
          throw new TypeError('boom');
        },
        { name: 'fails' },
      ),
    );
    expect(e.message).toBe("while 'fails': body: boom");
    expect(e.cause).toBeInstanceOf(TypeError);
  });

  /** A verified graph whose while body holds a cond; `mutate` breaks a copy of it. */
  function brokenNested(
    mutate: (body: { nodes: Record<string, unknown>[] }, g: GraphData) => void,
  ): GraphData {
    const { g } = nestedModel();
    const copy = structuredClone(plain(g));
    const loop = copy.nodes.find((n) => n.op === 'while')!;
    mutate(loop.attrs.body as unknown as { nodes: Record<string, unknown>[] }, copy);
    return copy;
  }

  it('names the outer node, the attribute and the inner node when a region is broken', () => {
    const g = brokenNested((body) => {
      const inner = body.nodes.find((n) => n.op === 'add')!;
      (inner.attrs as Record<string, unknown>).bogus = 1;
    });
    const e = errorOf(() => verifyGraph(g));
    expect(e.code).toBe('verify');
    expect(e.message).toMatch(
      /^node #\d+ \(while 'collatz'\): while: attribute 'body': node #\d+ \(add 'add(_\d+)?'\): add: unknown attribute 'bogus'/,
    );
  });

  it('rejects a region whose recorded types disagree with its ops, deep inside', () => {
    const g = brokenNested((body) => {
      const inner = body.nodes.find((n) => n.op === 'cond')!;
      const branch = (inner.attrs as { then: { values: { type: { dtype: string } }[] } }).then;
      for (const v of branch.values) v.type.dtype = 'float32';
    });
    const e = errorOf(() => verifyGraph(g));
    expect(e.message).toMatch(
      /while 'collatz'\): while: attribute 'body': node #\d+ \(cond 'step'\): cond: attribute 'then'/,
    );
  });

  it.each([
    [
      'a placeholder that is not an input',
      (r: { inputs: number[] }) => r.inputs.pop(),
      /a placeholder that is not a region input/,
    ],
    ['an input listed twice', (r: { inputs: number[] }) => r.inputs.push(r.inputs[0]!), /listed twice/],
    [
      'a dangling result',
      (r: { results: number[] }) => r.results.push(999),
      /region result \d+ refers to %999/,
    ],
    [
      'named outputs',
      (r: { outputs?: Record<string, number> }) => (r.outputs = { y: 0 }),
      /a region has no named outputs/,
    ],
  ])('rejects a region with %s', (_, mutate, message) => {
    const g = brokenNested((body) => mutate(body as never));
    expect(errorOf(() => verifyGraph(g)).message).toMatch(message);
  });

  it('rejects variables inside a region', () => {
    const inner = new Graph();
    const a = inner.placeholder('float32', [2], 'arg0');
    const v = inner.variable(
      'w',
      inner.constant({ dtype: 'float32', shape: [2], data: new Float32Array(2) }),
    );
    const region: Region = {
      nodes: inner.nodes,
      values: inner.values,
      initializers: [],
      outputs: {},
      inputs: [a.id],
      results: [add(a, v).id],
    };
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const p = g.placeholder('bool', [], 'p');
    // biome-ignore lint/suspicious/noThenProperty: the cond op's attribute.
    const e = errorOf(() => g.apply('cond', [p, x], { then: region, else: region }));
    expect(e.message).toMatch(/variables and assigns cannot appear inside a region/);
  });

  it(`bounds nesting at ${MAX_REGION_DEPTH} levels`, () => {
    const nest = (g: Graph, x: SymbolicTensor, depth: number): SymbolicTensor => {
      if (depth === 0) return neg(x);
      const p = less(sum(x), 0);
      return cond(
        g,
        p,
        [x],
        (v) => [nest(v.graph, v, depth - 1)],
        (v) => [v],
      )[0]!;
    };
    const ok = new Graph();
    nest(ok, ok.placeholder('float32', [2], 'x'), MAX_REGION_DEPTH);
    verifyGraph(ok);
    const deep = new Graph();
    const e = errorOf(() => nest(deep, deep.placeholder('float32', [2], 'x'), MAX_REGION_DEPTH + 1));
    expect(e.message).toMatch(/regions nested more than 16 deep/);
  });
});

// ---------------------------------------------------------------- serialization

describe('serializing control flow', () => {
  it('round-trips nested regions exactly and runs the same after loading', () => {
    const { g, steps, picked } = nestedModel();
    const bytes = serializeGraph(g);
    const loaded = deserializeGraph(bytes);
    expect(printGraph(loaded)).toBe(printGraph(g));
    const again = serializeGraph(loaded);
    expect(again).toEqual(bytes);
    const reloaded = Graph.from(loaded);
    const feeds = { n: i32(27), x: f32([3, 2, 1]) };
    const want = run(g, feeds, [steps, picked]);
    const got = run(reloaded, feeds, [reloaded.tensor('steps'), reloaded.tensor('picked')]);
    expect(got.map((t) => Array.from(t.data))).toEqual(want.map((t) => Array.from(t.data)));
    expect(got[0]!.data[0]).toBe(collatzSteps(27));
  });

  it('refuses to serialize a graph whose region is broken', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    halvingLoop(g, x);
    const bytes = serializeGraph(g);
    // The encoded payload holds the region maps; break one field and re-frame it.
    const good = deserializeGraph(bytes);
    const loop = good.nodes.find((n) => n.op === 'while')!;
    const body = loop.attrs.body as { results: number[] };
    body.results = [0, 99];
    const e = errorOf(() => serializeGraph(good));
    expect(e.code).toBe('serialization');
    expect(e.message).toMatch(/region result 1 refers to %99/);
  });

  const packr = new Packr({ useRecords: false, moreTypes: true });
  const unpackr = new Unpackr({ useRecords: false, moreTypes: true });
  /** Bytes with a payload tree of our making, behind a valid header. */
  function framed(tree: unknown): Uint8Array {
    const payload = packr.pack(tree);
    const out = new Uint8Array(16 + payload.length);
    const view = new DataView(out.buffer);
    out.set([0x4b, 0x49, 0x4c, 0x4e], 0);
    view.setUint16(4, 1, true);
    view.setUint32(8, payload.length, true);
    view.setUint32(12, crc32(payload), true);
    out.set(payload, 16);
    return out;
  }

  it('checks region maps field by field when decoding', () => {
    const g = new Graph();
    halvingLoop(g, g.placeholder('float32', [3], 'x'));
    const tree = unpackr.unpack(serializeGraph(g).subarray(16)) as unknown[][];
    const loop = tree[0]!.findIndex((n) => (n as unknown[])[0] === 'while');
    const body = ((tree[0]![loop] as unknown[])[2] as Record<string, { inputs: unknown[] }>).body!;
    body.inputs[0] = 'x';
    const e = errorOf(() => deserializeGraph(framed(tree)));
    expect(e.code).toBe('serialization');
    expect(e.message).toBe(
      `malformed payload: node #${loop} attribute "body": inputs[0]: expected a value id below ${(body as unknown as { values: unknown[] }).values.length}, got the string "x"`,
    );
  });

  it('bounds the nesting of region maps when decoding', () => {
    let region: unknown = { nodes: [], values: [], inputs: [], results: [] };
    for (let depth = 0; depth < MAX_REGION_DEPTH + 2; depth++) {
      region = { nodes: [['while', [], { body: region }, [], null]], values: [], inputs: [], results: [] };
    }
    const tree = [[['while', [], { body: region }, [], null]], [], [], []];
    const e = errorOf(() => deserializeGraph(framed(tree)));
    expect(e.code).toBe('serialization');
    expect(e.message).toMatch(/^malformed payload: .*regions nested more than 16 deep$/);
  });

  it('tags regions by their keys in the payload', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const p = g.placeholder('bool', [], 'p');
    cond(
      g,
      p,
      [x],
      (v) => [relu(v)],
      (v) => [v],
    );
    const loaded = deserializeGraph(serializeGraph(g));
    const node = loaded.nodes.find((n) => n.op === 'cond')!;
    const then = node.attrs.then as Region;
    expect(Object.keys(then).sort()).toEqual([
      'initializers',
      'inputs',
      'nodes',
      'outputs',
      'results',
      'values',
    ]);
    expect(then.nodes.map((n) => n.op)).toEqual(['placeholder', 'relu']);
  });
});

describe('interpret', () => {
  it('runs a graph whose while loop needs a constant built outside it', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const limit = tensor(g, [3], []);
    const [y] = whileLoop(
      g,
      [x, limit],
      (v, l) => less(sum(v), l!),
      (v, l) => [add(v, 1), l!],
    );
    const [got] = run(g, { x: f32([0, 0]) }, [y!]);
    expect(Array.from(got!.data)).toEqual([2, 2]);
  });
});
