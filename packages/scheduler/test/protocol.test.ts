import { add, Graph, KilnError, matmul, Prng, randomNormal, relu, serializeGraph, softmax } from '@kiln/ir';
import { Packr } from 'msgpackr';
import { describe, expect, it, vi } from 'vitest';
import { decodeFromWorker, decodeToWorker, encodeFrame } from '../src/cluster/codec.js';
import type { FromWorker, ToWorker, WireTensor } from '../src/cluster/protocol.js';
import { subgraphFromBytes, subgraphToBytes } from '../src/cluster/subgraph-bytes.js';
import { fromWire } from '../src/cluster/wire-tensor.js';
import { plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';
import {
  bool,
  f32,
  fromWorkerMessages as fromWorker,
  i32,
  shifted,
  toWorkerMessages as toWorker,
} from './fixtures/wire-messages.js';

/** Byte arrays as plain number arrays, so messages compare by content, not by array class. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return { bytes: Array.from(x) };
  if (Array.isArray(x)) return x.map(plain);
  if (typeof x === 'object' && x !== null)
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

function protocolError(f: () => unknown): KilnError {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a KilnError').toBeInstanceOf(KilnError);
  expect((error as KilnError).code).toBe('protocol');
  return error as KilnError;
}

/** A frame holding anything at all (what a hostile peer could send). */
const raw = new Packr({ useRecords: false, moreTypes: false });
const frame = (x: unknown): Uint8Array => raw.pack(x);

describe('codec: round trips', () => {
  it('carries every ToWorker message unchanged', () => {
    for (const m of toWorker()) {
      const back = decodeToWorker(encodeFrame(m));
      expect(plain(back)).toEqual(plain(m));
    }
  });

  it('carries every FromWorker message unchanged', () => {
    for (const m of fromWorker()) {
      const back = decodeFromWorker(encodeFrame(m));
      expect(plain(back)).toEqual(plain(m));
    }
  });

  it('carries tensor bytes byte for byte, only the view’s bytes of an offset view', () => {
    const t = shifted();
    const expected = Array.from(new Uint8Array(new Float32Array([1.5, -2, 3.25, 1e30]).buffer));
    expect(t.bytes.byteOffset).toBe(5);
    const m = decodeToWorker(encodeFrame({ t: 'run', run: 1, partition: 'p', args: [t] }));
    if (m.t !== 'run') throw new Error(`decoded a '${m.t}'`);
    expect(m.args[0]!.bytes.byteLength).toBe(16);
    expect(Array.from(m.args[0]!.bytes)).toEqual(expected);
  });

  it('gives aligned host tensors of the right values from decoded frames, wherever the bytes lie', () => {
    const values = [1.5, -2, 3.25, 1e30];
    const message: FromWorker = {
      t: 'done',
      run: 1,
      partition: 'p',
      results: [shifted(), i32([7, -8, 2 ** 30], [3]), bool([1, 0, 0, 1, 1], [5]), f32([], [0])],
      seconds: 1,
    };
    const encoded = encodeFrame(message);
    // The frame as the encoder made it, as a plain Uint8Array, and inside a socket's larger buffer
    // at every offset: decoded tensor bytes may then start anywhere.
    const frames: Uint8Array[] = [encoded, new Uint8Array(encoded)];
    for (let at = 0; at < 4; at++) {
      const big = new Uint8Array(encoded.byteLength + 8);
      big.set(encoded, at + 1);
      frames.push(big.subarray(at + 1, at + 1 + encoded.byteLength));
      frames.push(Buffer.from(big.buffer, at + 1, encoded.byteLength));
    }
    for (const f of frames) {
      const m = decodeFromWorker(f);
      if (m.t !== 'done') throw new Error(`decoded a '${m.t}'`);
      const [a, b, c, d] = m.results.map(fromWire);
      expect(a!.dtype).toBe('float32');
      expect(a!.shape).toEqual([2, 2]);
      expect(a!.data).toBeInstanceOf(Float32Array);
      expect(a!.data.byteOffset % 4).toBe(0);
      expect(Array.from(a!.data)).toEqual(values.map(Math.fround));
      expect(b!.data).toBeInstanceOf(Int32Array);
      expect(b!.data.byteOffset % 4).toBe(0);
      expect(Array.from(b!.data)).toEqual([7, -8, 2 ** 30]);
      expect(c!.dtype).toBe('bool');
      expect(Array.from(c!.data)).toEqual([1, 0, 0, 1, 1]);
      expect(d!.shape).toEqual([0]);
      expect(d!.data.length).toBe(0);
    }
  });
});

describe('codec: hostile input', () => {
  const bad: [string, unknown, RegExp][] = [
    ['an unknown message type', { t: 'explode' }, /unknown message type 'explode'/],
    ['no type', { request: 1 }, /message\.t/],
    ['a type that is not a string', { t: 3 }, /message\.t/],
    ['an array for a message', [1, 2], /message: expected an object/],
    ['a number for a message', 5, /message: expected an object/],
    ['null for a message', null, /message: expected an object/],
    ['bytes for a message', new Uint8Array([1]), /message: expected an object/],
    [
      'a hello without version',
      { t: 'hello', worker: 'w', device: { module: 'm' } },
      /'hello' message\.version/,
    ],
    ['a negative version', { t: 'hello', version: -1, worker: 'w', device: { module: 'm' } }, /\.version/],
    ['a fractional version', { t: 'hello', version: 1.5, worker: 'w', device: { module: 'm' } }, /\.version/],
    ['a version string', { t: 'hello', version: '1', worker: 'w', device: { module: 'm' } }, /\.version/],
    ['a worker number', { t: 'hello', version: 1, worker: 4, device: { module: 'm' } }, /\.worker/],
    ['a date for a message', new Date(0), /message: expected an object/],
    ['a load with graph as a string', loadWith({ graph: 'AAAA' }), /'load' message\.graph: expected bytes/],
    ['a load with graph as numbers', loadWith({ graph: [1, 2] }), /\.graph: expected bytes/],
    ['a load without memory', loadWith({ memory: undefined }), /\.memory/],
    [
      'a load with a bad offset pair',
      loadWith({ memory: { order: [], arenaBytes: 0, offsets: [[1]] } }),
      /memory\.offsets\[0\]/,
    ],
    [
      'a load with a negative offset',
      loadWith({ memory: { order: [], arenaBytes: 0, offsets: [[1, -4]] } }),
      /memory\.offsets\[0\]/,
    ],
    [
      'a load with a bad order',
      loadWith({ memory: { order: [0, 'x'], arenaBytes: 0, offsets: [] } }),
      /memory\.order\[1\]/,
    ],
    [
      'a load with bad arenaBytes',
      loadWith({ memory: { order: [], arenaBytes: -1, offsets: [] } }),
      /memory\.arenaBytes/,
    ],
    [
      'a load with an unknown input kind',
      loadWith({ inputs: [{ kind: 'file', name: 'x' }] }),
      /inputs\[0\]\.kind/,
    ],
    [
      'a load with an output kind of an input',
      loadWith({ outputs: [{ kind: 'arg', name: 'x' }] }),
      /outputs\[0\]\.kind/,
    ],
    ['a load with a nameless input', loadWith({ inputs: [{ kind: 'arg' }] }), /inputs\[0\]\.name/],
    ['a load without request', loadWith({ request: undefined }), /'load' message\.request/],
    ['a run with args not an array', { t: 'run', run: 1, partition: 'p', args: {} }, /'run' message\.args/],
    ['a run with a string run', { t: 'run', run: '1', partition: 'p', args: [] }, /'run' message\.run/],
    ['a tensor not an object', runWith(5), /args\[0\]: expected an object/],
    [
      'an unknown dtype',
      runWith({ dtype: 'float64', shape: [1], bytes: new Uint8Array(8) }),
      /args\[0\]\.dtype/,
    ],
    ['a dtype number', runWith({ dtype: 1, shape: [1], bytes: new Uint8Array(4) }), /args\[0\]\.dtype/],
    [
      'short tensor bytes',
      runWith({ dtype: 'float32', shape: [2, 3], bytes: new Uint8Array(20) }),
      /args\[0\]: 20 bytes do not fill/,
    ],
    [
      'long tensor bytes',
      runWith({ dtype: 'int32', shape: [2], bytes: new Uint8Array(12) }),
      /args\[0\]: 12 bytes/,
    ],
    [
      'bool bytes of float width',
      runWith({ dtype: 'bool', shape: [2], bytes: new Uint8Array(8) }),
      /args\[0\]: 8 bytes/,
    ],
    [
      'a negative dimension',
      runWith({ dtype: 'float32', shape: [-1], bytes: new Uint8Array(0) }),
      /args\[0\]\.shape/,
    ],
    [
      'a fractional dimension',
      runWith({ dtype: 'float32', shape: [0.5], bytes: new Uint8Array(2) }),
      /args\[0\]\.shape/,
    ],
    [
      'a string dimension',
      runWith({ dtype: 'float32', shape: ['1'], bytes: new Uint8Array(4) }),
      /args\[0\]\.shape/,
    ],
    [
      'a huge dimension',
      runWith({ dtype: 'float32', shape: [2 ** 60], bytes: new Uint8Array(4) }),
      /args\[0\]\.shape/,
    ],
    [
      'dimensions whose product is huge',
      runWith({ dtype: 'bool', shape: [2 ** 40, 2 ** 40], bytes: new Uint8Array(4) }),
      /args\[0\]: 4 bytes do not fill/,
    ],
    [
      'a huge rank',
      runWith({ dtype: 'float32', shape: new Array(33).fill(1), bytes: new Uint8Array(4) }),
      /args\[0\]\.shape: rank 33/,
    ],
    [
      'a shape not an array',
      runWith({ dtype: 'float32', shape: 4, bytes: new Uint8Array(16) }),
      /args\[0\]\.shape/,
    ],
    [
      'tensor bytes as numbers',
      runWith({ dtype: 'bool', shape: [2], bytes: [1, 0] }),
      /args\[0\]\.bytes: expected bytes/,
    ],
    [
      'tensor bytes as a string',
      runWith({ dtype: 'bool', shape: [2], bytes: 'ab' }),
      /args\[0\]\.bytes: expected bytes/,
    ],
    ['no tensor bytes', runWith({ dtype: 'bool', shape: [2] }), /args\[0\]\.bytes/],
    [
      'a variable pair of one',
      { t: 'setVariables', request: 1, variables: [['w']] },
      /variables\[0\]: expected \[name, tensor\]/,
    ],
    [
      'a variable name number',
      { t: 'setVariables', request: 1, variables: [[1, f32([1], [1])]] },
      /variables\[0\]/,
    ],
    [
      'a bad variable tensor',
      { t: 'setVariables', request: 1, variables: [['w', { dtype: 'bool', shape: [1] }]] },
      /variables\[0\]\.bytes/,
    ],
    ['a name number', { t: 'getVariables', request: 1, names: ['a', 2] }, /names\[1\]/],
    ['a partition number', { t: 'unload', request: 1, partitions: [null] }, /partitions\[0\]/],
    ['a commit without runs', { t: 'commit' }, /'commit' message\.runs: expected an array/],
    [
      'a commit of a negative run',
      { t: 'commit', runs: [1, -2] },
      /'commit' message\.runs\[1\]: expected a run id/,
    ],
    ['a commit of a fractional run', { t: 'commit', runs: [0.5] }, /\.runs\[0\]: expected a run id/],
    ['a commit of a string run', { t: 'commit', runs: ['3'] }, /\.runs\[0\]: expected a run id/],
    ['a release of a string run', { t: 'release', runs: ['3'] }, /'release' message\.runs\[0\]/],
    ['a FromWorker type', { t: 'ok', request: 1 }, /unknown message type 'ok'/],
  ];

  for (const [name, message, field] of bad)
    it(`refuses ${name}, naming the field`, () => {
      expect(protocolError(() => decodeToWorker(frame(message))).message).toMatch(field);
    });

  const badFrom: [string, unknown, RegExp][] = [
    ['a ToWorker type', { t: 'close' }, /unknown message type 'close'/],
    ['a commit, which only a coordinator sends', { t: 'commit', runs: [1] }, /unknown message type 'commit'/],
    [
      'a ready without device kind',
      { t: 'ready', version: 1, worker: 'w', device: { name: 'x' } },
      /device\.kind/,
    ],
    ['an ok with a negative request', { t: 'ok', request: -3 }, /'ok' message\.request/],
    ['a done with negative seconds', doneWith({ seconds: -1 }), /'done' message\.seconds/],
    ['a done with NaN seconds', doneWith({ seconds: Number.NaN }), /\.seconds/],
    ['a done with string seconds', doneWith({ seconds: '1' }), /\.seconds/],
    [
      'a done with a bad result',
      doneWith({ results: [{ dtype: 'int32', shape: [3], bytes: new Uint8Array(4) }] }),
      /results\[0\]: 4 bytes/,
    ],
    ['a done without partition', doneWith({ partition: undefined }), /'done' message\.partition/],
    [
      'a failed without error',
      { t: 'failed', run: 1, partition: 'p', request: null },
      /'failed' message\.error/,
    ],
    [
      'a failed with a string run',
      { t: 'failed', run: '1', partition: null, request: null, error: { code: 'c', message: 'm' } },
      /\.run/,
    ],
    [
      'a failed missing request',
      { t: 'failed', run: 1, partition: null, error: { code: 'c', message: 'm' } },
      /\.request/,
    ],
    [
      'a failed with a code number',
      { t: 'failed', run: 1, partition: null, request: null, error: { code: 1, message: 'm' } },
      /error\.code/,
    ],
    [
      'variables of a bad tensor',
      { t: 'variables', request: 1, variables: [['w', { dtype: 'x', shape: [], bytes: new Uint8Array(4) }]] },
      /variables\[0\]\.dtype/,
    ],
  ];

  for (const [name, message, field] of badFrom)
    it(`refuses from a worker ${name}, naming the field`, () => {
      expect(protocolError(() => decodeFromWorker(frame(message))).message).toMatch(field);
    });

  it('never takes a device from a hello: a module named in one is dropped', () => {
    const hello = decodeToWorker(
      encodeFrame({ t: 'hello', version: 1, worker: 'w', device: { module: 'file:///evil.js' } } as never),
    );
    expect(hello).toEqual({ t: 'hello', version: 1, worker: 'w' });
  });

  it('refuses frames over the size limit before decoding them', () => {
    const f = encodeFrame({ t: 'run', run: 1, partition: 'p', args: [f32([1, 2, 3, 4], [4])] });
    expect(decodeToWorker(f, f.byteLength).t).toBe('run');
    expect(protocolError(() => decodeToWorker(f, f.byteLength - 1)).message).toMatch(
      new RegExp(`${f.byteLength}-byte frame exceeds the ${f.byteLength - 1}-byte limit`),
    );
    expect(protocolError(() => decodeFromWorker(encodeFrame({ t: 'ok', request: 1 }), 2)).message).toMatch(
      /limit/,
    );
  });

  it('refuses a frame that is not bytes', () => {
    for (const f of ['abc', [1, 2], new ArrayBuffer(4), null, undefined])
      expect(protocolError(() => decodeToWorker(f as never)).message).toMatch(/frame must be bytes/);
  });

  it('refuses every truncation of every valid frame', () => {
    const frames = [...toWorker(), ...fromWorker()].map(encodeFrame);
    for (const f of frames)
      for (let n = 0; n < f.byteLength; n++) {
        protocolError(() => decodeToWorker(f.subarray(0, n)));
        protocolError(() => decodeFromWorker(f.slice(0, n)));
      }
  });

  it('does not let a __proto__ key stand in for fields', () => {
    const smuggled = JSON.parse('{"__proto__": {"t": "close"}}');
    expect(protocolError(() => decodeToWorker(frame(smuggled))).message).toMatch(/message\.t/);
    const tensor = JSON.parse('{"__proto__": {"dtype": "bool", "shape": [1]}, "bytes": null}');
    expect(protocolError(() => decodeToWorker(frame(runWith(tensor)))).message).toMatch(/args\[0\]\.dtype/);
  });

  it('refuses absurdly deep nesting with a protocol error', () => {
    protocolError(() => decodeToWorker(new Uint8Array(200_000).fill(0x91)));
  });

  it('refuses a valid frame with bytes after it', () => {
    const f = encodeFrame({ t: 'close' });
    const longer = new Uint8Array(f.byteLength + 1);
    longer.set(f);
    protocolError(() => decodeToWorker(longer));
  });

  it('refuses a 16 MB frame with one byte after it without rendering the message', () => {
    const f = encodeFrame({
      t: 'run',
      run: 1,
      partition: 'p',
      args: [f32(new Array(4 << 20).fill(1), [4 << 20])],
    });
    const longer = new Uint8Array(f.byteLength + 1);
    longer.set(f);
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      expect(protocolError(() => decodeToWorker(longer)).message).toMatch(/1 byte left over/);
      expect(stringify).not.toHaveBeenCalled();
    } finally {
      stringify.mockRestore();
    }
  });

  it('turns random garbage into protocol errors', () => {
    const rng = new Prng(7);
    for (let i = 0; i < 2000; i++) {
      const f = Uint8Array.from({ length: rng.int(0, 40) }, () => rng.int(0, 255));
      outcome('to', f);
      outcome('from', f);
    }
  });
});

/** Runs a decode: a valid message (true) or a KilnError('protocol') (false); anything else fails. */
function outcome(side: 'to' | 'from', f: Uint8Array): boolean {
  const decode = side === 'to' ? decodeToWorker : decodeFromWorker;
  let m: ToWorker | FromWorker;
  try {
    m = decode(f);
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe('protocol');
    return false;
  }
  // What was accepted is a well-formed message: it survives another trip unchanged.
  expect(plain(decode(encodeFrame(m)))).toEqual(plain(m));
  for (const t of tensorsOf(m)) {
    const width = t.dtype === 'bool' ? 1 : 4;
    expect(t.bytes.byteLength).toBe(t.shape.reduce((a, b) => a * b, width));
    expect(fromWire(t).data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
  }
  return true;
}

function tensorsOf(m: ToWorker | FromWorker): readonly WireTensor[] {
  switch (m.t) {
    case 'run':
      return m.args;
    case 'done':
      return m.results;
    case 'setVariables':
    case 'variables':
      return m.variables.map(([, t]) => t);
    default:
      return [];
  }
}

function loadWith(o: Record<string, unknown>): Record<string, unknown> {
  const base: Record<string, unknown> = {
    t: 'load',
    request: 1,
    partition: 'p',
    graph: new Uint8Array([1]),
    memory: null,
    inputs: [],
    outputs: [],
  };
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

/** {a: {a: ... {a: 1}}}, `depth` maps deep. */
function runWith(tensor: unknown) {
  return { t: 'run', run: 1, partition: 'p', args: [tensor] };
}

function doneWith(o: Record<string, unknown>): Record<string, unknown> {
  const base: Record<string, unknown> = { t: 'done', run: 1, partition: 'p', results: [], seconds: 0 };
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

describe('codec: tail frames', () => {
  const big = (n: number, seed: number): WireTensor => {
    const rng = new Prng(seed);
    const data = Float32Array.from({ length: n }, () => rng.normal());
    return { dtype: 'float32', shape: [n], bytes: new Uint8Array(data.buffer) };
  };
  const message = (): Extract<ToWorker, { t: 'run' }> => ({
    t: 'run',
    run: 3,
    partition: 'p0/worker:1#0',
    args: [big(20_000, 1), big(3, 2), big(5_001, 3)],
  });
  /** The header of a tail frame as sent: [tail lengths, message with markers]. */
  const tailFrame = (header: unknown, tails: readonly number[]): Uint8Array => {
    const packed = raw.pack(header);
    let length = (5 + packed.byteLength + 7) & ~7;
    for (const t of tails) length += (t + 7) & ~7;
    const f = new Uint8Array(length);
    f[0] = 0xc1;
    new DataView(f.buffer).setUint32(1, packed.byteLength, true);
    f.set(packed, 5);
    return f;
  };

  it('sends large tensors after the header, and reads them back as aligned views of the frame', () => {
    const m = message();
    const f = encodeFrame(m);
    expect(f[0]).toBe(0xc1);
    const back = decodeToWorker(f);
    expect(plain(back)).toEqual(plain(m));
    const args = (back as Extract<ToWorker, { t: 'run' }>).args;
    // The large ones are views into the frame at 8-byte offsets (no copy); the 12-byte one was
    // packed inline.
    for (const k of [0, 2]) {
      expect(args[k]!.bytes.buffer).toBe(f.buffer);
      expect((args[k]!.bytes.byteOffset - f.byteOffset) % 8).toBe(0);
    }
    expect(Array.from(fromWire(args[0]!).data)).toEqual(
      Array.from(new Float32Array(m.args[0]!.bytes.buffer)),
    );
  });

  it('refuses tail frames whose lengths, markers or bytes do not add up', () => {
    const good = encodeFrame(message());
    expect(protocolError(() => decodeToWorker(good.subarray(0, good.byteLength - 8))).message).toMatch(
      /bad tail frame \(a tail runs past the frame\)/,
    );
    const longer = new Uint8Array(good.byteLength + 8);
    longer.set(good);
    expect(protocolError(() => decodeToWorker(longer)).message).toMatch(
      /8 bytes left over after the last tail/,
    );
    const lying = good.slice();
    new DataView(lying.buffer).setUint32(1, 1 << 30, true);
    expect(protocolError(() => decodeToWorker(lying)).message).toMatch(/its header runs past the frame/);
    const run = {
      t: 'run',
      run: 1,
      partition: 'p',
      args: [{ dtype: 'float32', shape: [1], bytes: { '\u0000tail': 7 } }],
    };
    expect(protocolError(() => decodeToWorker(tailFrame([[4], run], [4]))).message).toMatch(
      /a marker names no tail/,
    );
    expect(protocolError(() => decodeToWorker(tailFrame([[-4], run], []))).message).toMatch(
      /a tail length is not a size/,
    );
    expect(protocolError(() => decodeToWorker(tailFrame({ not: 'a header' }, []))).message).toMatch(
      /its header is not \[tail lengths, message\]/,
    );
    // A marker whose tail does not fill the tensor's shape is caught by the message's validator.
    const short = { ...run, args: [{ dtype: 'float32', shape: [2], bytes: { '\u0000tail': 0 } }] };
    expect(protocolError(() => decodeToWorker(tailFrame([[4], short], [4]))).message).toMatch(
      /do not fill a float32\[2\]/,
    );
  });
});

// ---- partition subgraphs as bytes ----

describe('subgraph bytes', () => {
  function partitions() {
    const g = new Graph();
    const x = g.placeholder('float32', [8, 16], 'x');
    const w1 = g.variable('w1', randomNormal(g, [16, 32], { seed: 1 }));
    const w2 = g.variable('w2', randomNormal(g, [32, 4], { seed: 2 }));
    const h = relu(add(matmul(x, w1), 0.1));
    const start = g.nodes.length;
    const logits = softmax(matmul(h, w2));
    const hints = new Map(g.nodes.slice(start).map((n) => [n.id, 'null:1']));
    hints.set(w2.node.id, 'null:1');
    const devices = [new NullDevice({ name: 'null:0' }), new NullDevice({ name: 'null:1' })];
    return plan(g, devices, {
      fetches: [logits.id, h.id],
      feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [8, 16] }]]),
      hints,
    }).partitions;
  }

  it('round-trips each partition with its inputs and results in order', () => {
    const parts = partitions();
    expect(parts.length).toBe(2);
    let inputs = 0;
    for (const { subgraph } of parts) {
      const back = subgraphFromBytes(subgraphToBytes(subgraph));
      expect(back.inputs).toEqual(subgraph.inputs);
      expect(back.results).toEqual(subgraph.results);
      expect(back.nodes).toEqual(subgraph.nodes);
      expect(back.values).toEqual(subgraph.values);
      inputs += subgraph.inputs.length;
    }
    // The plan has cross-partition inputs, so the order check above means something.
    expect(inputs).toBeGreaterThan(1);
  });

  it('keeps inputs in index order when placeholders come in another node order', () => {
    const g = new Graph();
    const b = g.placeholder('float32', [2], 'in1');
    const a = g.placeholder('float32', [2], 'in0');
    const s = add(a, b);
    const t = add(s, b);
    const back = subgraphFromBytes(
      serializeGraph({ nodes: g.nodes, values: g.values, initializers: [], outputs: { r1: s.id, r0: t.id } }),
    );
    expect(back.inputs).toEqual([a.id, b.id]);
    expect(back.results).toEqual([t.id, s.id]);
  });

  function forged(names: readonly string[], outputs: readonly string[]): Uint8Array {
    const g = new Graph();
    // Built under distinct names, then renamed: the builder itself refuses duplicates.
    const ins = names.map((_, i) => g.placeholder('float32', [2], `p${i}`));
    ins.forEach((t, i) => {
      (t.node.attrs as Record<string, unknown>).name = names[i];
    });
    let sum = ins[0]!;
    for (const t of ins.slice(1)) sum = add(sum, t);
    const out = relu(sum);
    return serializeGraph({
      nodes: g.nodes,
      values: g.values,
      initializers: [],
      outputs: Object.fromEntries(outputs.map((o, i) => [o, i === 0 ? out.id : sum.id])),
    });
  }

  const refused: [string, string[], string[], RegExp][] = [
    ['a placeholder not named inN', ['in0', 'x'], ['r0'], /placeholder 'x'/],
    ['a placeholder named in', ['in'], ['r0'], /placeholder 'in'/],
    ['a placeholder named in-1', ['in0', 'in-1'], ['r0'], /placeholder 'in-1'/],
    ['a gap in the numbering', ['in0', 'in2'], ['r0'], /in0\.\.in1/],
    ['numbering from 1', ['in1'], ['r0'], /in0/],
    ['an index with a leading zero', ['in0', 'in01'], ['r0'], /placeholder 'in01'/],
    ['a result not named rN', ['in0'], ['out'], /results/],
    ['results from r1', ['in0'], ['r1'], /results/],
    ['a gap in the results', ['in0', 'in1'], ['r0', 'r2'], /results/],
  ];
  for (const [name, names, outputs, message] of refused)
    it(`refuses ${name}`, () => {
      const bytes = forged(names, outputs);
      expect(protocolError(() => subgraphFromBytes(bytes)).message).toMatch(message);
    });
});
