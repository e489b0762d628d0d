import {
  type Checkpoint,
  DTYPES,
  decodeCheckpoint,
  encodeCheckpoint,
  HostTensor,
  type KilnError,
  Prng,
} from '@kiln/ir';
import {
  attempt,
  type CaseVerdict,
  type FuzzTarget,
  formatCampaign,
  fuzzSettings,
  hexSeed,
  mutant,
  runCampaign,
  stackDependence,
} from '@kiln/ir/testing';
import { describe, expect, it } from 'vitest';

/**
 * Mutation fuzzing of decodeCheckpoint. The property: every input either decodes to a checkpoint
 * whose every tensor is a valid HostTensor (the typed array of its dtype, as many elements as its
 * shape says) and which encodes and decodes again to the same checkpoint, or is rejected with a
 * KilnError('serialization') whose message stays short (MAX_MESSAGE); and no case takes longer than
 * BOUND_MS. A failure names its case's
 * seed: KILN_FUZZ_SEED=<seed> KILN_FUZZ_CASES=1 replays that case alone.
 */
const { cases: CASES, seed: SEED } = fuzzSettings(process.env, { cases: 4000, seed: 0x636b7074 });
const BOUND_MS = 1000;
/** A rejection says what was wrong without carrying the input: its message is at most this long. */
const MAX_MESSAGE = 1000;

// ---------------------------------------------------------------- checkpoints to mutate

const f32 = (shape: number[], values: number[]) =>
  new HostTensor('float32', shape, Float32Array.from(values));
const i32 = (shape: number[], values: number[]) => new HostTensor('int32', shape, Int32Array.from(values));
const bool = (shape: number[], values: number[]) => new HostTensor('bool', shape, Uint8Array.from(values));

function random(rng: Prng, shape: number[]): HostTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return f32(
    shape,
    Array.from({ length: size }, () => rng.normal()),
  );
}

const rng = new Prng(11);
const checkpoints: Checkpoint[] = [
  {
    variables: {
      'dense/w': f32([2, 3], [Number.NaN, -0, Infinity, -1, 1.5, 3.4e38]),
      'dense/b': f32([3], [0.1, 0.2, 0.3]),
      step: i32([], [41]),
      mask: bool([4], [1, 0, 0, 1]),
      empty: f32([0, 5], []),
      'adam/m/dense/w': f32([2, 3], [0, 0, 0, 0, 0, 0]),
    },
    metadata: { step: 12, learningRate: 0.001, model: 'mlp' },
  },
  { variables: {}, metadata: {} },
  {
    variables: {
      scalar: f32([], [2.5]),
      counts: i32([1, 1, 3], [-(2 ** 31), 0, 2 ** 31 - 1]),
      flags: bool([2, 0], []),
      'ünïcode/名前': bool([1], [1]),
    },
    metadata: { epoch: -3, note: 'x'.repeat(300), ratio: Number.NaN },
  },
  {
    variables: {
      'layer1/w': random(rng, [8, 16]),
      'layer1/b': random(rng, [16]),
      'layer2/w': random(rng, [16, 4]),
    },
    metadata: { step: 2 ** 40 },
  },
];
const sources = checkpoints.map(encodeCheckpoint);

const target: FuzzTarget = {
  sources,
  framed: true,
  keys: ['variables', 'metadata'],
  values: (r) =>
    r.pick<() => unknown>([
      () => r.pick(['float32', 'int32', 'bool', 'float64', 'float16', 'step', '']),
      () =>
        r.pick([
          [],
          [0],
          [1],
          [3],
          [2, 3],
          [-1],
          [1.5],
          [null],
          [2 ** 31],
          [2 ** 31 - 1, 0],
          [2 ** 16, 2 ** 16],
        ]),
      () => new Array(r.pick([16, 17, 64])).fill(1),
      () => ['w', 'float32', [1], new Uint8Array(4)],
      () => ['w', 'int32', [], new Uint8Array(r.int(0, 9))],
    ])(),
};

// ---------------------------------------------------------------- the property

const REASONS: [string, RegExp][] = [
  ['header', /^not a kiln checkpoint|^format version|^unsupported header flags/],
  ['length', /^truncated: |^trailing bytes: /],
  ['checksum', /^checksum mismatch/],
  ['msgpack', /^payload is not valid msgpack: /],
  ['fields', /^not a valid kiln checkpoint: /],
];

const ARRAY_OF = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;

/** What is wrong with a decoded checkpoint, or undefined when it is a valid one. */
function invalidity(cp: Checkpoint): string | undefined {
  if (typeof cp.variables !== 'object' || cp.variables === null) return 'variables is not an object';
  for (const [name, t] of Object.entries(cp.variables)) {
    if (!(t instanceof HostTensor)) return `'${name}' is not a HostTensor`;
    if (!DTYPES.includes(t.dtype)) return `'${name}' has dtype ${String(t.dtype)}`;
    if (t.data.constructor !== ARRAY_OF[t.dtype]) return `'${name}' holds a ${t.data.constructor.name}`;
    if (!Array.isArray(t.shape)) return `'${name}' has no shape array`;
    for (const d of t.shape)
      if (!Number.isSafeInteger(d) || d < 0 || Object.is(d, -0))
        return `'${name}' has dimension ${String(d)}`;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) return `'${name}': ${t.data.length} elements for shape [${t.shape}]`;
    // What graph constants must hold too (attrs.ts): kernels may test a bool with === 1.
    if (t.dtype === 'bool' && t.data.some((x) => x > 1)) return `'${name}' is bool data outside 0 and 1`;
  }
  const proto = Object.getPrototypeOf(cp.metadata);
  if (proto !== Object.prototype && proto !== null) return 'metadata is not a plain object';
  for (const [k, v] of Object.entries(cp.metadata))
    if (typeof v !== 'string' && typeof v !== 'number') return `metadata '${k}' is a ${typeof v}`;
  return undefined;
}

/** A checkpoint as comparable text: names sorted, every number as written (-0 and NaN kept). */
function fingerprint(cp: Checkpoint): string {
  const num = (x: unknown) =>
    Object.is(x, -0) ? '-0' : typeof x === 'number' ? String(x) : JSON.stringify(x);
  const vars = Object.keys(cp.variables)
    .sort()
    .map((name) => {
      const t = cp.variables[name]!;
      const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');
      return `${JSON.stringify(name)}:${t.dtype}[${t.shape.map(num)}]=${bytes}`;
    });
  const meta = Object.keys(cp.metadata)
    .sort()
    .map((k) => `${JSON.stringify(k)}=${num(cp.metadata[k])}`);
  return `${vars.join(';')} | ${meta.join(';')}`;
}

function runCase(seed: number): CaseVerdict {
  const { bytes, family, notes } = mutant(seed, target);
  const what = `${family}: ${notes.join('; ')}`;
  const result = attempt(() => decodeCheckpoint(bytes), 'serialization');
  const unstable = stackDependence(notes, result, () =>
    attempt(() => decodeCheckpoint(bytes), 'serialization'),
  );
  if (unstable) return { outcome: 'stack-dependent', failure: `${what}: ${unstable}` };
  if (result.kind === 'crash') return { outcome: 'crash', failure: `${what}: threw ${result.description}` };
  if (result.kind === 'rejected' && result.error.message.length > MAX_MESSAGE)
    return {
      outcome: 'long message',
      failure: `${what}: a ${result.error.message.length}-character message: ${result.error.message.slice(0, 150)}`,
    };
  if (result.kind === 'rejected') return { outcome: reason(result.error) };
  const cp = result.value;
  const wrong = invalidity(cp);
  if (wrong) return { outcome: 'invalid', failure: `${what}: decoded, but ${wrong}` };
  const again = attempt(() => decodeCheckpoint(encodeCheckpoint(cp)), 'serialization');
  if (again.kind !== 'value')
    return {
      outcome: 'unstable',
      failure: `${what}: decoded, but its re-encoding does not decode: ${again.kind === 'crash' ? again.description : again.error.message}`,
    };
  if (fingerprint(again.value) !== fingerprint(cp))
    return {
      outcome: 'unstable',
      failure: `${what}: decoded, but re-encoding changes it: ${fingerprint(cp).slice(0, 200)} -> ${fingerprint(again.value).slice(0, 200)}`,
    };
  return { outcome: 'decoded' };
}

function reason(e: KilnError): string {
  return REASONS.find(([, re]) => re.test(e.message))?.[0] ?? 'other';
}

describe('decodeCheckpoint under mutation', () => {
  it('the sources decode to what was encoded', () => {
    checkpoints.forEach((cp, i) => {
      expect(fingerprint(decodeCheckpoint(sources[i]!))).toBe(fingerprint(cp));
    });
  });

  it(`decodes to a valid checkpoint or rejects cleanly, each of ${CASES} cases within ${BOUND_MS} ms`, () => {
    const report = runCampaign({ cases: CASES, seed: SEED, boundMs: BOUND_MS, run: runCase });
    console.log(formatCampaign('checkpoint fuzz', report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    // Every layer of the decoder must be reached often, or a pass would prove little.
    if (CASES >= 1000) {
      for (const layer of ['header', 'checksum', 'msgpack', 'fields', 'decoded']) {
        expect(report.outcomes.get(layer) ?? 0, `cases ending in '${layer}'`).toBeGreaterThan(CASES / 100);
      }
    }
  });

  it('replays a case from its seed alone', () => {
    const seed = SEED + 17;
    const first = mutant(seed, target);
    expect(mutant(seed, target)).toEqual(first);
    expect(runCase(seed)).toEqual(runCase(seed));
    expect(hexSeed(seed)).toMatch(/^0x[0-9a-f]+$/);
  });
});
