import {
  attempt,
  type CaseVerdict,
  type FuzzTarget,
  formatCampaign,
  fuzzSettings,
  mutant,
  runCampaign,
} from '@kiln/ir/testing';
import { describe, expect, it } from 'vitest';
import {
  decodeFromCoordinator,
  decodeToCoordinator,
  encodeClientFrame,
  type FromCoordinator,
  parseFromCoordinator,
  parseToCoordinator,
  type ToCoordinator,
} from '../src/cluster/client-protocol.js';
import { bool, f32, i32, shifted } from './fixtures/wire-messages.js';

/**
 * Mutation fuzzing of the client protocol (programs that `connect` to a coordinator), every
 * message variant both ways. The property, as for the worker protocol: a frame decodes to a
 * message the parser accepts again as it is and that survives re-encoding unchanged, or it is
 * refused with a short KilnError('protocol'); nothing else escapes, and no case is slow.
 */
const { cases: CASES, seed: SEED } = fuzzSettings(process.env, { cases: 1500, seed: 0x636c6e74 });
const BOUND_MS = 1000;
const MAX_MESSAGE = 1000;

const device = {
  name: 'cpu:0',
  kind: 'cpu',
  info: { flopsPerSecond: 2e9, bytesPerSecond: 4e9 },
  ops: [['add', ['float32']]] as const,
};
const state = {
  devices: [device],
  generations: [['worker:0', 1]] as const,
  homes: [['w', 'worker:0']] as const,
};

const toMessages = (): ToCoordinator[] => [
  { t: 'hello', version: 1 },
  { t: 'settle', id: 0 },
  { t: 'cancel', id: 7 },
  {
    t: 'request',
    id: 1,
    worker: 'worker:0',
    what: 'read variables',
    body: { t: 'getVariables', names: ['w', 'b'] },
  },
  {
    t: 'request',
    id: 2,
    worker: 'worker:1',
    what: 'set variables',
    body: { t: 'setVariables', variables: [['w', f32([1, 2], [2])]] },
  },
  {
    t: 'request',
    id: 3,
    worker: 'worker:1',
    what: 'unload',
    body: { t: 'unload', partitions: ['p0/worker:1#0'] },
  },
  {
    t: 'execute',
    id: 4,
    partitions: [
      {
        key: 'c0p0/worker:0#0',
        worker: 'worker:0',
        stage: 0,
        args: [{ feed: 'x' }],
        returns: [{ values: [], fetches: [0] }],
        keeps: ['k'],
        reads: ['w'],
        writes: [],
      },
      {
        key: 'c0p0/worker:1#1',
        worker: 'worker:1',
        stage: 1,
        args: [],
        returns: [],
        waits: ['k'],
        reads: [],
        writes: ['w'],
      },
    ],
    fetchCount: 1,
    runs: [[['x', shifted()]], [['x', i32([1], [1])]]],
    timeoutMillis: 1000,
    trace: true,
  },
  { t: 'execute', id: 5, partitions: [], fetchCount: 0, runs: [], timeoutMillis: null, trace: false },
  {
    t: 'placed',
    id: 6,
    record: {
      plan: 'c0p0',
      partitions: [{ key: 'c0p0/worker:0#0', worker: 'worker:0', nodes: 3, reasons: ['hint worker:0'] }],
      variables: [{ name: 'w', worker: 'worker:0', reason: 'earliest finish' }],
    },
  },
  { t: 'story', id: 8, subjects: ['worker:0', 'run:3'] },
  { t: 'traffic', id: 9 },
];

const fromMessages = (): FromCoordinator[] => [
  { t: 'welcome', version: 1, client: 0, names: ['worker:0', 'worker:1'], state },
  { t: 'state', id: 0, state: { devices: [], generations: [], homes: [] } },
  { t: 'answer', id: 1, message: { t: 'variables', request: 0, variables: [['w', bool([1, 0], [2])]] } },
  { t: 'answer', id: 2, message: { t: 'ok', request: 0 } },
  {
    t: 'results',
    id: 4,
    results: [[f32([0.5], [])], []],
    trace: [{ worker: 'worker:0', run: 3, partition: 'p', start: 1.5, end: 2.5, seconds: 0.001 }],
  },
  {
    t: 'story',
    id: 8,
    entries: [
      {
        seq: 4,
        stimulus: 'done-4',
        at: 1.7e12,
        event: 'worker:0 finished p',
        decisions: ['run 3 complete'],
        subjects: ['run:3'],
      },
    ],
  },
  { t: 'error', id: 9, code: 'limit', message: 'more than 64 requests under way from one client' },
  {
    t: 'traffic',
    id: 10,
    links: [{ worker: 'worker:0', peer: 'worker at 127.0.0.1:4000', sent: 12, received: 0 }],
  },
];

// biome-ignore format: a list of names reads better packed
const FIELDS = ['t', 'id', 'version', 'worker', 'what', 'body', 'names', 'variables', 'partitions', 'key', 'stage', 'args', 'feed', 'value', 'returns', 'values', 'fetches', 'keeps', 'waits', 'reads', 'writes', 'fetchCount', 'runs', 'timeoutMillis', 'trace', 'record', 'plan', 'nodes', 'reasons', 'reason', 'subjects', 'client', 'state', 'devices', 'generations', 'homes', 'message', 'results', 'entries', 'seq', 'stimulus', 'at', 'event', 'decisions', 'code', 'dtype', 'shape', 'bytes'];

const vocabulary: FuzzTarget['values'] = (r) =>
  r.pick<() => unknown>([
    () =>
      r.pick([
        'hello',
        'settle',
        'request',
        'execute',
        'cancel',
        'placed',
        'story',
        'welcome',
        'state',
        'answer',
        'results',
        'error',
        'getVariables',
        'load',
      ]),
    () => ({ dtype: 'float32', shape: [2 ** 31, 2 ** 31], bytes: new Uint8Array(4) }),
    () => r.pick([-1, 2 ** 53, 1e308, Number.NaN, 0]),
    () => 'x'.repeat(r.int(0, 5000)),
    () => Array.from({ length: r.int(0, 70) }, () => 's'),
    () => ({ feed: 1 }),
  ])();

const target = (messages: readonly unknown[]): FuzzTarget => ({
  sources: messages.map((m) => {
    const parts = encodeClientFrame(m as ToCoordinator);
    return Buffer.concat(parts);
  }),
  framed: false,
  keys: FIELDS,
  values: vocabulary,
});

function runCase(seed: number, side: 'to' | 'from'): CaseVerdict {
  const decode = side === 'to' ? decodeToCoordinator : decodeFromCoordinator;
  const parse = side === 'to' ? parseToCoordinator : parseFromCoordinator;
  const { bytes, family, notes } = mutant(seed, side === 'to' ? toTarget : fromTarget);
  const what = `${side} coordinator, ${family}: ${notes.join('; ')}`;
  const result = attempt(() => decode(bytes), 'protocol');
  if (result.kind === 'crash') return { outcome: 'crash', failure: `${what}: threw ${result.description}` };
  if (result.kind === 'rejected')
    return result.error.message.length > MAX_MESSAGE
      ? { outcome: 'long message', failure: `${what}: a ${result.error.message.length}-character message` }
      : { outcome: 'rejected' };
  const m = result.value;
  const reparsed = attempt(() => parse(m), 'protocol');
  if (reparsed.kind !== 'value')
    return { outcome: 'invalid', failure: `${what}: decoded '${m.t}', but the parser refuses it again` };
  const again = attempt(() => decode(Buffer.concat(encodeClientFrame(m))), 'protocol');
  if (again.kind !== 'value' || JSON.stringify(plain(again.value)) !== JSON.stringify(plain(m)))
    return { outcome: 'unstable', failure: `${what}: decoded '${m.t}', but re-encoding changes it` };
  return { outcome: `decoded '${m.t}'` };
}

/** Bytes and -0 written out, so messages compare by content. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex');
  if (typeof x === 'number') return Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x;
  if (Array.isArray(x)) return x.map(plain);
  if (typeof x === 'object' && x !== null)
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

const toTarget = target(toMessages());
const fromTarget = target(fromMessages());

describe.each(['to', 'from'] as const)('client protocol frames %s a coordinator under mutation', (side) => {
  it('parse every variant as written', () => {
    const messages = side === 'to' ? toMessages() : fromMessages();
    const decode = side === 'to' ? decodeToCoordinator : decodeFromCoordinator;
    for (const m of messages)
      expect(plain(decode(Buffer.concat(encodeClientFrame(m as ToCoordinator))))).toEqual(plain(m));
  });

  it(`decode to valid messages or fail with protocol errors, each of ${CASES} cases within ${BOUND_MS} ms`, () => {
    const report = runCampaign({
      cases: CASES,
      seed: SEED,
      boundMs: BOUND_MS,
      run: (seed) => runCase(seed, side),
    });
    console.log(formatCampaign(`client protocol fuzz, ${side} coordinator`, report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    if (CASES >= 1000) expect(report.outcomes.get('rejected') ?? 0).toBeGreaterThan(CASES / 4);
  });
});
