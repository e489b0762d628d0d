import {
  attempt,
  type CaseVerdict,
  describeError,
  type FuzzTarget,
  formatCampaign,
  fuzzSettings,
  mutant,
  runCampaign,
  stackDependence,
} from '@kiln/ir/testing';
import { describe, expect, it } from 'vitest';
import { decodeFromWorker, decodeToWorker, encodeFrame } from '../src/cluster/codec.js';
import {
  type FromWorker,
  parseFromWorker,
  parseToWorker,
  type ToWorker,
  type WireTensor,
} from '../src/cluster/protocol.js';
import { fromWire } from '../src/cluster/wire-tensor.js';
import { fromWorkerMessages, toWorkerMessages } from './fixtures/wire-messages.js';

/**
 * Mutation fuzzing of the wire codec, every message variant in both directions. The property:
 * every frame either decodes to a message that the parser accepts again as it is, whose tensors
 * hold exactly the bytes their shapes need, and which encodes and decodes back to the same
 * message; or it is rejected with a KilnError('protocol') whose message stays short (MAX_MESSAGE);
 * and no case takes longer than BOUND_MS.
 * A failure names its case's seed: KILN_FUZZ_SEED=<seed> KILN_FUZZ_CASES=1 replays it alone.
 */
const { cases: CASES, seed: SEED } = fuzzSettings(process.env, { cases: 3000, seed: 0x77697265 });
const BOUND_MS = 1000;
/** A rejection says what was wrong without carrying the input: its message is at most this long. */
const MAX_MESSAGE = 1000;

const TAGS = ['hello', 'load', 'run', 'setVariables', 'getVariables', 'unload', 'commit', 'release', 'close'];
const FROM_TAGS = ['attach', 'ready', 'ok', 'done', 'variables', 'failed'];
// biome-ignore format: a list of names reads better packed
const FIELDS = ['t', 'version', 'worker', 'device', 'module', 'options', 'request', 'partition', 'graph', 'memory', 'order', 'arenaBytes', 'offsets', 'inputs', 'outputs', 'kind', 'name', 'keep', 'run', 'args', 'variables', 'names', 'partitions', 'runs', 'dtype', 'shape', 'bytes', 'results', 'seconds', 'error', 'code', 'message'];

/** Values that mean something in a message: tags (another variant's too), kinds, dtypes, tensors. */
const vocabulary: FuzzTarget['values'] = (r) =>
  r.pick<() => unknown>([
    () => r.pick([...TAGS, ...FROM_TAGS]),
    () =>
      r.pick(['variable', 'arg', 'local', 'return', 'assign', 'keep', 'float32', 'int32', 'bool', 'float64']),
    () => ({
      dtype: r.pick(['float32', 'int32', 'bool']),
      shape: [r.int(0, 3)],
      bytes: new Uint8Array(r.int(0, 12)),
    }),
    () => ({ dtype: 'float32', shape: [2 ** 31, 2 ** 31, 0], bytes: new Uint8Array(0) }),
    () => ['w', { dtype: 'bool', shape: [], bytes: new Uint8Array(1) }],
    () => ({ kind: r.pick(['arg', 'keep']), name: 'x', keep: [] }),
    () =>
      r.pick([
        [3, 0],
        [0, 2 ** 53],
        [-1, 0],
      ]),
  ])();

const toTarget: FuzzTarget = {
  sources: toWorkerMessages().map(encodeFrame),
  framed: false,
  keys: FIELDS,
  values: vocabulary,
};
const fromTarget: FuzzTarget = { ...toTarget, sources: fromWorkerMessages().map(encodeFrame) };

// ---------------------------------------------------------------- the property

/**
 * A message as comparable text, every number as written (-0, NaN), bytes as hex, keys in order.
 * Iterative with a depth limit of its own, so whatever nesting a decoder let through is reported
 * as such instead of overflowing here.
 */
function fingerprint(x: unknown, depth = 0): string {
  if (depth > 64) return '<deeper than 64>';
  if (typeof x === 'number') return Object.is(x, -0) ? '-0' : String(x);
  if (typeof x !== 'object' || x === null) return typeof x === 'string' ? JSON.stringify(x) : String(x);
  if (x instanceof Uint8Array)
    return `bytes(${Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')})`;
  if (Array.isArray(x)) return `[${x.map((v) => fingerprint(v, depth + 1)).join(',')}]`;
  const proto = Object.getPrototypeOf(x);
  const tag = proto === Object.prototype || proto === null ? '' : `${proto?.constructor?.name ?? '?'}`;
  const entries = Object.keys(x).map(
    (k) => `${JSON.stringify(k)}:${fingerprint((x as Record<string, unknown>)[k], depth + 1)}`,
  );
  return `${tag}{${entries.join(',')}}`;
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

/** What is wrong with a decoded message, or undefined when it is a valid one. */
function invalidity(m: ToWorker | FromWorker, parse: (x: unknown) => unknown): string | undefined {
  const reparsed = attempt(() => parse(m), 'protocol');
  if (reparsed.kind !== 'value')
    return `the parser refuses it: ${reparsed.kind === 'crash' ? reparsed.description : reparsed.error.message}`;
  for (const t of tensorsOf(m)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.bytes.byteLength !== size * (t.dtype === 'bool' ? 1 : 4))
      return `a ${t.dtype}[${t.shape}] tensor has ${t.bytes.byteLength} bytes`;
    const host = attempt(() => fromWire(t), 'protocol');
    if (host.kind !== 'value' || host.value.data.length !== size)
      return `a ${t.dtype}[${t.shape}] tensor does not load`;
  }
  return undefined;
}

function runCase(seed: number, side: 'to' | 'from'): CaseVerdict {
  const target = side === 'to' ? toTarget : fromTarget;
  const decode: (f: Uint8Array) => ToWorker | FromWorker = side === 'to' ? decodeToWorker : decodeFromWorker;
  const parse = side === 'to' ? parseToWorker : parseFromWorker;
  const { bytes, family, notes } = mutant(seed, target);
  const what = `${side} worker, ${family}: ${notes.join('; ')}`;
  const result = attempt(() => decode(bytes), 'protocol');
  const unstable = stackDependence(notes, result, () => attempt(() => decode(bytes), 'protocol'));
  if (unstable) return { outcome: 'stack-dependent', failure: `${what}: ${unstable}` };
  if (result.kind === 'crash') return { outcome: 'crash', failure: `${what}: threw ${result.description}` };
  if (result.kind === 'rejected' && result.error.message.length > MAX_MESSAGE)
    return {
      outcome: 'long message',
      failure: `${what}: a ${result.error.message.length}-character message: ${result.error.message.slice(0, 150)}`,
    };
  if (result.kind === 'rejected') return { outcome: 'rejected' };
  const m = result.value;
  const wrong = invalidity(m, parse);
  if (wrong) return { outcome: 'invalid', failure: `${what}: decoded '${m.t}', but ${wrong}` };
  let again: ToWorker | FromWorker;
  try {
    again = decode(encodeFrame(m));
  } catch (e) {
    return {
      outcome: 'unstable',
      failure: `${what}: decoded '${m.t}', but it does not re-encode: ${describeError(e)}`,
    };
  }
  if (fingerprint(again) !== fingerprint(m))
    return {
      outcome: 'unstable',
      failure: `${what}: decoded, but re-encoding changes it: ${fingerprint(m).slice(0, 200)} -> ${fingerprint(again).slice(0, 200)}`,
    };
  return { outcome: `decoded '${m.t}'` };
}

describe.each(['to', 'from'] as const)('wire frames %s a worker under mutation', (side) => {
  const messages = side === 'to' ? toWorkerMessages() : fromWorkerMessages();
  const tags = side === 'to' ? TAGS : FROM_TAGS;

  it('start from every message variant', () => {
    expect(new Set(messages.map((m) => m.t))).toEqual(new Set(tags));
  });

  it(`decode to valid messages or fail with protocol errors, each of ${CASES} cases within ${BOUND_MS} ms`, () => {
    const report = runCampaign({
      cases: CASES,
      seed: SEED,
      boundMs: BOUND_MS,
      run: (seed) => runCase(seed, side),
    });
    console.log(formatCampaign(`wire fuzz, ${side} worker`, report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    // Both outcomes, and every variant among the decoded, or the mutations prove little.
    if (CASES >= 1000) {
      expect(report.outcomes.get('rejected') ?? 0).toBeGreaterThan(CASES / 4);
      for (const t of tags)
        expect(report.outcomes.get(`decoded '${t}'`) ?? 0, `decoded '${t}'`).toBeGreaterThan(0);
    }
  });
});
