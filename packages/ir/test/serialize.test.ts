import {
  add,
  concat,
  crc32,
  deserializeGraph,
  GRAPH_FORMAT_VERSION,
  GRAPH_HEADER_BYTES,
  GRAPH_MAGIC,
  Graph,
  type GraphData,
  KilnError,
  matmul,
  printGraph,
  randomNormal,
  relu,
  reshape,
  serializeGraph,
  softmax,
  verifyGraph,
} from '@kiln/ir';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';

// ---------------------------------------------------------------- fixtures

/** A float32 array with exact bit patterns, NaN payloads included. */
function floatsFromBits(bits: readonly number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

const SPECIAL_FLOATS = floatsFromBits([
  0x7fc00000, // NaN
  0x7fa00001, // a signalling NaN with a payload
  0xffc0beef, // a negative NaN with a payload
  0x80000000, // -0
  0x7f800000, // Infinity
  0xff800000, // -Infinity
  0x00000001, // the smallest subnormal
  0x3fc00000, // 1.5
]);

function buildModel(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const w1 = g.variable('dense1/w', randomNormal(g, [4, 8], { seed: 1, stddev: 0.5 }));
  const b1 = g.variable('dense1/b', g.constant({ dtype: 'float32', shape: [8], data: SPECIAL_FLOATS }));
  const h = g.scope('dense1', () => relu(add(matmul(x, w1), b1)));
  const w2 = g.variable('dense2/w', randomNormal(g, [8, 3], { seed: 2, counter: 5 }));
  const logits = g.scope('dense2', () => matmul(h, w2));
  const probs = g.scope('head', () => softmax(logits));
  const flat = reshape(probs, [-1]);
  const extra = g.constant({ dtype: 'float32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
  const stacked = concat([probs, extra, probs], 0);
  const ints = g.constant({
    dtype: 'int32',
    shape: [2, 2],
    data: Int32Array.from([-2147483648, 2147483647, 0, -1]),
  });
  const mask = g.constant({ dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) });
  g.output('probs', probs);
  g.output('flat', flat);
  g.output('stacked', stacked);
  g.output('ints', add(ints, 1));
  g.output('mask', mask);
  return g;
}

/** The GraphData fields of a builder Graph, without its private bookkeeping. */
const plain = (g: GraphData): GraphData => ({
  nodes: g.nodes,
  values: g.values,
  initializers: g.initializers,
  outputs: g.outputs,
});

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function rejection(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe('serialization');
    return e as KilnError;
  }
  throw new Error('expected a KilnError, but nothing was thrown');
}

const rejects = (bytes: Uint8Array) => rejection(() => deserializeGraph(bytes)).message;

// The header is written again here, independently of the implementation, so the tests pin the
// documented layout rather than echo whatever the code does.
function frame(payload: Uint8Array, patch: { version?: number; flags?: number; length?: number } = {}) {
  const out = new Uint8Array(16 + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x4b, 0x49, 0x4c, 0x4e], 0);
  view.setUint16(4, patch.version ?? 1, true);
  view.setUint16(6, patch.flags ?? 0, true);
  view.setUint32(8, patch.length ?? payload.length, true);
  view.setUint32(12, crc32(payload), true);
  out.set(payload, 16);
  return out;
}

// Decoded payloads are edited freely by path, the way an attacker would; typing them would only
// restate the format.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Tree = any;

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true });

/** Decodes the payload of `bytes`, lets `edit` change the tree, and frames it again (valid CRC). */
function repack(bytes: Uint8Array, edit: (payload: Tree) => unknown): Uint8Array {
  const tree = unpackr.unpack(bytes.subarray(16));
  const replaced = edit(tree);
  return frame(packr.pack(replaced === undefined ? tree : replaced));
}

function edited(bytes: Uint8Array, edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer), copy);
  return copy;
}

// ---------------------------------------------------------------- round trips

describe('serializeGraph / deserializeGraph', () => {
  const g = buildModel();
  const bytes = serializeGraph(g);
  const nodeIndex = (name: string) => g.nodes.findIndex((n) => n.name === name);

  it('round-trips a realistic graph exactly', () => {
    verifyGraph(g);
    const back = deserializeGraph(bytes);
    expect(back).toStrictEqual(plain(g));
    expect(printGraph(back)).toBe(printGraph(g));
    expect(serializeGraph(back)).toEqual(bytes);
    expect(Object.keys(back.outputs)).toEqual(['probs', 'flat', 'stacked', 'ints', 'mask']);
    expect(back.values.find((v) => v.id === g.outputs.flat)!.type.shape).toEqual([null]);
  });

  it('keeps every bit of constant tensors, NaN payloads and -0 included', () => {
    const back = deserializeGraph(bytes);
    const constants = g.nodes.filter((n) => n.op === 'constant');
    expect(constants.map((n) => (n.attrs.value as { dtype: string }).dtype).sort()).toEqual([
      'bool',
      'float32',
      'float32',
      'int32',
      'int32', // the 1 in add(ints, 1)
    ]);
    for (const node of constants) {
      const before = node.attrs.value as { data: Float32Array | Int32Array | Uint8Array };
      const after = back.nodes[node.id]!.attrs.value as { data: Float32Array | Int32Array | Uint8Array };
      expect(after.data.constructor).toBe(before.data.constructor);
      expect(bytesOf(after.data)).toEqual(bytesOf(before.data));
    }
    const b1 = back.nodes[nodeIndex('dense1/b') - 1]!.attrs.value as { data: Float32Array };
    expect(Array.from(new Uint32Array(b1.data.buffer, b1.data.byteOffset, 8), (x) => x.toString(16))).toEqual(
      ['7fc00000', '7fa00001', 'ffc0beef', '80000000', '7f800000', 'ff800000', '1', '3fc00000'],
    );
  });

  it('returns tensors that own their memory', () => {
    const copy = bytes.slice();
    const back = deserializeGraph(copy);
    copy.fill(0, GRAPH_HEADER_BYTES);
    const ints = back.nodes.find(
      (n) => n.op === 'constant' && (n.attrs.value as { dtype: string }).dtype === 'int32',
    )!;
    expect(Array.from((ints.attrs.value as { data: Int32Array }).data)).toEqual([
      -2147483648, 2147483647, 0, -1,
    ]);
  });

  it('keeps -0 in numeric attributes, which msgpack would write as the integer 0', () => {
    const h = new Graph();
    const r = randomNormal(h, [2], { seed: 3, mean: -0, stddev: 2 });
    h.output('r', reshape(r, [-1, 2]));
    const back = deserializeGraph(serializeGraph(h));
    expect(Object.is(back.nodes[0]!.attrs.mean, -0)).toBe(true);
    expect(back).toStrictEqual(plain(h));
  });

  it('gives data that Graph.from can extend and verify', () => {
    const loaded = Graph.from(deserializeGraph(bytes));
    loaded.output('probs2', relu(loaded.tensor('probs')));
    verifyGraph(loaded);
    expect(loaded.nodes).toHaveLength(g.nodes.length + 1);
  });

  it('writes the documented header', () => {
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(GRAPH_MAGIC).toBe('KILN');
    expect(GRAPH_FORMAT_VERSION).toBe(1);
    expect(GRAPH_HEADER_BYTES).toBe(16);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('KILN');
    expect(view.getUint16(4, true)).toBe(1);
    expect(view.getUint16(6, true)).toBe(0);
    expect(view.getUint32(8, true)).toBe(bytes.length - 16);
    expect(view.getUint32(12, true)).toBe(crc32(bytes.subarray(16)));
    expect(frame(bytes.subarray(16))).toEqual(bytes);
  });

  it('computes the standard CRC-32', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new TextEncoder().encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('refuses to serialize a graph that fails verification', () => {
    const broken: GraphData = { ...plain(g), initializers: g.initializers.slice(1) };
    expect(rejection(() => serializeGraph(broken)).message).toMatch(
      /^cannot serialize a graph that fails verification: variable 'dense1\/w' has no initializer/,
    );
  });

  // -------------------------------------------------------------- the header

  describe('rejects bytes with a bad header', () => {
    it('too short', () => {
      expect(rejects(new Uint8Array(0))).toBe(
        'not a kiln graph (too short): 0 bytes, less than the 16-byte header',
      );
      expect(rejects(bytes.subarray(0, 10))).toBe(
        'not a kiln graph (too short): 10 bytes, less than the 16-byte header',
      );
    });

    it('not bytes at all', () => {
      expect(rejection(() => deserializeGraph('KILN' as unknown as Uint8Array)).message).toBe(
        'not a kiln graph: expected a Uint8Array, got string',
      );
    });

    it('bad magic', () => {
      const msg = rejects(edited(bytes, (_, b) => b.set([0x50, 0x4b, 0x03, 0x04])));
      expect(msg).toBe('not a kiln graph (bad magic): starts with 0x504b0304, expected "KILN"');
    });

    it('an unknown format version', () => {
      expect(rejects(edited(bytes, (v) => v.setUint16(4, 7, true)))).toBe(
        'format version 7 is not supported (this kiln reads version 1)',
      );
      expect(rejects(frame(bytes.subarray(16), { version: 0 }))).toBe(
        'format version 0 is not supported (this kiln reads version 1)',
      );
    });

    it('nonzero flags', () => {
      expect(rejects(frame(bytes.subarray(16), { flags: 4 }))).toBe(
        'unsupported header flags 0x0004 (format version 1 requires 0)',
      );
    });

    it('truncated bytes', () => {
      const n = bytes.length - 16;
      expect(rejects(bytes.subarray(0, bytes.length - 5))).toBe(
        `truncated: header says ${n} payload bytes, ${n - 5} present`,
      );
      expect(rejects(bytes.subarray(0, 16))).toBe(`truncated: header says ${n} payload bytes, 0 present`);
    });

    it('a forged length, without reserving memory for it', () => {
      expect(rejects(edited(bytes, (v) => v.setUint32(8, 0xffffffff, true)))).toBe(
        `truncated: header says 4294967295 payload bytes, ${bytes.length - 16} present`,
      );
    });

    it('trailing garbage', () => {
      const n = bytes.length - 16;
      const longer = new Uint8Array(bytes.length + 3);
      longer.set(bytes);
      expect(rejects(longer)).toBe(
        `trailing bytes: header says ${n} payload bytes, ${n + 3} present (3 extra)`,
      );
    });

    it('a checksum mismatch', () => {
      const flipped = edited(bytes, (_, b) => {
        b[40]! ^= 0x10;
      });
      expect(rejects(flipped)).toMatch(
        /^checksum mismatch \(corrupted bytes\): header says 0x[0-9a-f]{8}, payload has 0x[0-9a-f]{8}$/,
      );
      expect(rejects(edited(bytes, (v) => v.setUint32(12, v.getUint32(12, true) ^ 1, true)))).toMatch(
        /^checksum mismatch \(corrupted bytes\)/,
      );
    });
  });

  // -------------------------------------------------------------- the msgpack layer

  describe('rejects payloads that are not msgpack', () => {
    it.each([
      ['empty', new Uint8Array(0), /Unexpected end of MessagePack data$/],
      ['cut short', bytes.slice(16, bytes.length - 3), /Unexpected end of MessagePack data$/],
      [
        'followed by more data',
        Uint8Array.from([...bytes.subarray(16), 0xc0]),
        /^payload is not valid msgpack: 1 byte left over after the msgpack value, which ends at byte \d+$/,
      ],
      ['an array claiming 2^32-1 elements', Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), /Unexpected end/],
      [
        'nested 100000 arrays deep',
        Uint8Array.from({ length: 100001 }, (_, i) => (i < 100000 ? 0x91 : 0xc0)),
        /values nested more than 256 deep$/,
      ],
      [
        'nested 257 sets deep (each reads the value after it)',
        Uint8Array.from([...Array.from({ length: 257 }, () => [0xd4, 0x73, 0x00, 0x91]).flat(), 0xc0]),
        /values nested more than 256 deep$/,
      ],
      [
        'a msgpackr record definition',
        Uint8Array.of(0xd4, 0x72, 0x40, 0x91, 0xa1, 0x6b, 0x40, 0x01),
        /a msgpackr record definition \(kiln data has none\)$/,
      ],
      [
        'a map with an array as a key',
        Uint8Array.of(0x81, 0x91, 0x01, 0x02),
        /a map has a key that is not a string$/,
      ],
    ])('%s', (_, payload, message) => {
      const msg = rejects(frame(payload));
      expect(msg).toMatch(/^payload is not valid msgpack: \S/);
      expect(msg).toMatch(message);
    });

    it('reads values nested 256 deep, leaving them to the payload checks', () => {
      const payload = Uint8Array.from({ length: 257 }, (_, i) => (i < 256 ? 0x91 : 0xc0));
      expect(rejects(frame(payload))).toMatch(/^malformed payload: /);
    });
  });

  // -------------------------------------------------------------- structure

  describe('rejects structurally wrong payloads', () => {
    const matmul1 = nodeIndex('dense1/matmul');
    const valueCount = g.values.length;
    const cases: [string, (p: Tree) => unknown, RegExp][] = [
      [
        'a map instead of the payload array',
        () => ({ nodes: [] }),
        /the payload: expected an array of 4, got a map$/,
      ],
      [
        'nodes not an array',
        (p) => void (p[0] = 'nodes'),
        /nodes: expected an array, got the string "nodes"$/,
      ],
      [
        'a node of the wrong arity',
        (p) => void p[0][2].pop(),
        /node #2: expected an array of 5 or 6, got an array of 4$/,
      ],
      [
        'an op that is not a string',
        (p) => void (p[0][1][0] = 7),
        /node #1: expected an op name \(a string\), got 7$/,
      ],
      [
        'an input beyond the values',
        (p) => void (p[0][matmul1][1][0] = 999),
        new RegExp(`node #${matmul1} input 0: expected a value id below ${valueCount}, got 999$`),
      ],
      [
        'a negative input',
        (p) => void (p[0][matmul1][1][1] = -1),
        /input 1: expected a value id below \d+, got -1$/,
      ],
      [
        'a fractional input',
        (p) => void (p[0][matmul1][1][1] = 1.5),
        /input 1: expected a value id below \d+, got 1.5$/,
      ],
      [
        'a 64-bit input',
        (p) => void (p[0][matmul1][1][1] = 2n ** 63n),
        /input 1: expected a value id below \d+, got a bigint$/,
      ],
      [
        'attributes that are an array',
        (p) => void (p[0][0][2] = []),
        /node #0 attributes: expected a map, got an array of 0$/,
      ],
      [
        'attributes that are a date',
        (p) => void (p[0][0][2] = new Date(0)),
        /node #0 attributes: expected a map, got a Date$/,
      ],
      [
        'a name that is a number',
        (p) => void (p[0][0][4] = 42),
        /node #0 name: expected a string or nil, got 42$/,
      ],
      [
        'an unknown dtype code',
        (p) => void (p[1][0][0] = 3),
        /value %0 dtype: expected a dtype code below 3, got 3$/,
      ],
      [
        'a dtype name instead of a code',
        (p) => void (p[1][0][0] = 'float32'),
        /value %0 dtype: expected a dtype code below 3, got the string "float32"$/,
      ],
      [
        'a negative dimension',
        (p) => void (p[1][0][1][1] = -4),
        /value %0 shape\[1\]: expected a size or nil, got -4$/,
      ],
      [
        'a shape that is not an array',
        (p) => void (p[1][0][1] = 4),
        /value %0 shape: expected an array, got 4$/,
      ],
      [
        'a value produced twice',
        (p) => void (p[0][1][3] = [0]),
        /node #1 output 0: value %0 is already output 0 of node #0$/,
      ],
      ['a value no node produces', (p) => void p[0][0][3].pop(), /value %0 is not an output of any node$/],
      [
        'an initializer without a name',
        (p) => void (p[2][0][0] = null),
        /initializer 0 variable: expected a variable name \(a string\), got nil$/,
      ],
      [
        'an output out of range',
        (p) => void (p[3][0][1] = valueCount),
        /output 0 value: expected a value id below \d+, got \d+$/,
      ],
      [
        'an output named twice',
        (p) => void (p[3][1][0] = p[3][0][0]),
        /output 1: the name "probs" is used twice$/,
      ],
      [
        'an output named __proto__',
        (p) => void (p[3][0][0] = '__proto__'),
        /output 0: '__proto__' cannot name an output$/,
      ],
      [
        'a regular expression as an attribute',
        (p) => void (p[0][0][2].name = /x+/),
        /attribute "name": expected an attribute value, got a RegExp$/,
      ],
      [
        'a set as an attribute',
        (p) => void (p[0][0][2].shape = new Set([1])),
        /attribute "shape": expected an attribute value, got a Set$/,
      ],
      [
        'an error object as an attribute',
        (p) => void (p[0][0][2].name = new Error('x')),
        /expected an attribute value, got an Error$/,
      ],
      [
        'attribute arrays nested too deep',
        (p) => void (p[0][0][2].shape = [[[[[[[[[1]]]]]]]]]),
        /attribute "shape"(\[0\]){8}: arrays nested more than 8 deep$/,
      ],
    ];
    it.each(cases)('%s', (_, edit, message) => {
      const forged = repack(bytes, edit);
      expect(rejects(forged)).toMatch(/^malformed payload: /);
      expect(rejects(forged)).toMatch(message);
    });

    const constantNode = (p: Tree) => p[0][nodeIndex('dense1/b') - 1][2].value;
    it.each([
      [
        'data bytes that do not fill the shape',
        (t: Tree) => void (t.data = t.data.subarray(0, 31)),
        /attribute "value": 31 data bytes do not hold a float32 tensor of shape \[8\]$/,
      ],
      [
        'a forged shape of 2^48 elements',
        (t: Tree) => void (t.shape = [65536, 65536, 65536]),
        /32 data bytes do not hold a float32 tensor of shape \[65536,65536,65536\]$/,
      ],
      [
        'data that is a string',
        (t: Tree) => void (t.data = 'abc'),
        /attribute "value" data: expected bytes, got the string "abc"$/,
      ],
      [
        'data that is a Float32Array',
        (t: Tree) => void (t.data = new Float32Array(8)),
        /data: expected bytes, got a Float32Array$/,
      ],
      [
        'data that is a Uint16Array',
        (t: Tree) => void (t.data = new Uint16Array(16)),
        /data: expected bytes, got a Uint16Array$/,
      ],
      [
        'an extra key',
        (t: Tree) => void (t.extra = 1),
        /a tensor map has exactly the keys dtype, shape, data; got "dtype", "shape", "data", "extra"$/,
      ],
      [
        'a fractional dimension',
        (t: Tree) => void (t.shape = [7.5]),
        /attribute "value" shape\[0\]: expected a size, got 7.5$/,
      ],
      [
        'a bad dtype code',
        (t: Tree) => void (t.dtype = 9),
        /attribute "value" dtype: expected a dtype code below 3, got 9$/,
      ],
    ])('a constant tensor with %s', (_, edit, message) => {
      const forged = repack(bytes, (p) => void edit(constantNode(p)));
      expect(rejects(forged)).toMatch(/^malformed payload: /);
      expect(rejects(forged)).toMatch(message);
    });

    it("msgpack's unused 0xc1 token", () => {
      expect(rejects(frame(Uint8Array.of(0xc1)))).toBe(
        'malformed payload: the payload: expected an array of 4, got a C1Type',
      );
    });

    it('is not polluted by __proto__ keys', () => {
      const attrs = (json: string) => (p: Tree) => {
        p[0][0][2] = JSON.parse(json);
      };
      expect(rejects(repack(bytes, attrs('{"__proto__": {"polluted": true}, "name": "x"}')))).toMatch(
        /^malformed payload: node #0 attribute "__proto_": a tensor map has exactly the keys/,
      );
      expect(rejects(repack(bytes, attrs('{"__proto__": "polluted", "name": "x"}')))).toMatch(
        /^graph fails verification: .*unknown attribute '__proto_'/,
      );
      const outputs = repack(bytes, (p) => {
        p[3] = JSON.parse('[["__proto__", 0]]');
      });
      expect(rejects(outputs)).toMatch(/'__proto__' cannot name an output/);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  // -------------------------------------------------------------- verification

  describe('rejects graphs that fail verification', () => {
    const matmul1 = nodeIndex('dense1/matmul');
    const out = g.nodes[matmul1]!.outputs[0]!;

    it('a recorded type that the inputs contradict', () => {
      const forged = repack(bytes, (p) => void (p[1][out][1] = [null, 9]));
      const err = rejection(() => deserializeGraph(forged));
      expect(err.message).toBe(
        `graph fails verification: node #${matmul1} (matmul 'dense1/matmul'): output %${out} is recorded as f32[?,9] but its inputs give f32[?,8]`,
      );
      expect((err.cause as KilnError).code).toBe('verify');
    });

    it('an unknown op', () => {
      const forged = repack(bytes, (p) => void (p[0][matmul1][0] = 'eval'));
      expect(rejects(forged)).toBe(`graph fails verification: node #${matmul1}: unknown op 'eval'`);
    });

    it('an attribute of the wrong kind', () => {
      const r = nodeIndex('reshape');
      const forged = repack(bytes, (p) => void (p[0][r][2].shape = 'abc'));
      expect(rejects(forged)).toMatch(
        new RegExp(
          `^graph fails verification: node #${r} \\(reshape 'reshape'\\): .*attribute 'shape': expected a list of integers`,
        ),
      );
    });

    // Fails until graph/verify.ts stops naming the node twice: verifyGraph passes describeNode(node)
    // to parseAttrs as `where`, then its catch prefixes the same description again. The builder
    // passes the op name instead (builder.ts: parseAttrs(op, attrs, op)).
    it('names the node once when an attribute is wrong', () => {
      const v = nodeIndex('dense1/w');
      const forged = repack(bytes, (p) => void (p[0][v][2].shape = [-1]));
      const msg = rejects(forged);
      const where = `node #${v} (variable 'dense1/w')`;
      expect(msg).toMatch(
        /^graph fails verification: .*attribute 'shape': expected a shape .*, got \[-1\]\n {4}in: %\d+ = variable\(\)/,
      );
      expect(msg.split(where).length - 1, msg).toBe(1);
    });

    it('an input used before it is defined', () => {
      const forged = repack(bytes, (p) => void (p[0][matmul1][1][0] = out));
      expect(rejects(forged)).toMatch(
        /^graph fails verification: .*input 0 refers to %\d+, which is not defined before this node/,
      );
    });

    it('bool data outside 0 and 1', () => {
      const m = g.nodes.findIndex(
        (n) => n.op === 'constant' && (n.attrs.value as { dtype: string }).dtype === 'bool',
      );
      const forged = repack(bytes, (p) => void (p[0][m][2].value.data = Uint8Array.of(1, 2, 1)));
      expect(rejects(forged)).toMatch(/^graph fails verification: .*bool data must be 0 or 1/);
    });

    it('duplicate node names', () => {
      const forged = repack(bytes, (p) => void (p[0][1][4] = p[0][0][4]));
      expect(rejects(forged)).toMatch(/^graph fails verification: .*name 'x' is also used by node #0/);
    });
  });
});
