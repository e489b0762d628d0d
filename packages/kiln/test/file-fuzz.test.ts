import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  add,
  type Checkpoint,
  decodeCheckpoint,
  deserializeGraph,
  encodeCheckpoint,
  Graph,
  HostTensor,
  KilnError,
  matmul,
  printGraph,
  relu,
  serializeGraph,
} from '@kiln/ir';
import {
  type Attempt,
  attempt,
  type CaseVerdict,
  describeError,
  type FuzzTarget,
  formatCampaign,
  fuzzSettings,
  mutant,
  runCampaignAsync,
} from '@kiln/ir/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpointFile } from '../src/checkpoint-file.js';
import { loadGraphFile } from '../src/graph-file.js';

/**
 * The file loaders under mutation: a mutated graph or checkpoint written to disk loads exactly as
 * the same bytes decode in memory, or fails with the decoder's KilnError (same code, the path in
 * front of its message, the decoder's error as the cause); nothing else escapes, within BOUND_MS a
 * case. The decoders' own fuzz tests (ir) hammer the bytes; this one checks what the loaders add.
 */
const { cases: CASES, seed: SEED } = fuzzSettings(process.env, { cases: 500, seed: 0x66696c65 });
const BOUND_MS = 1000;

function graph(): Graph {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 3], 'x');
  const w = g.variable(
    'w',
    g.constant({ dtype: 'float32', shape: [3, 2], data: new Float32Array(6).fill(0.5) }),
  );
  g.output('y', relu(add(matmul(x, w), 1)));
  return g;
}

const checkpoint: Checkpoint = {
  variables: {
    w: new HostTensor('float32', [3, 2], Float32Array.from([1, -0, 2, Number.NaN, 3, 4])),
    step: new HostTensor('int32', [], Int32Array.of(7)),
    mask: new HostTensor('bool', [2], Uint8Array.of(1, 0)),
  },
  metadata: { step: 7, note: 'fuzz' },
};

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-file-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Loads `bytes` from a file and decodes them in memory; the two must agree. */
async function fileCase<T>(
  seed: number,
  target: FuzzTarget,
  load: (path: string) => Promise<T>,
  decode: (bytes: Uint8Array) => T,
  same: (a: T, b: T) => boolean,
): Promise<CaseVerdict> {
  const { bytes, family, notes } = mutant(seed, target);
  const what = `${family}: ${notes.join('; ')}`;
  const path = join(dir, `case-${seed}.kiln`);
  await writeFile(path, bytes);
  let loaded: Attempt<T>;
  try {
    loaded = { kind: 'value', value: await load(path) };
  } catch (e) {
    loaded =
      e instanceof KilnError
        ? { kind: 'rejected', error: e }
        : { kind: 'crash', description: describeError(e) };
  } finally {
    await rm(path, { force: true });
  }
  const decoded = attempt(() => decode(bytes), 'serialization');
  if (loaded.kind === 'crash')
    return { outcome: 'crash', failure: `${what}: the loader threw ${loaded.description}` };
  if (decoded.kind === 'crash')
    return { outcome: 'crash', failure: `${what}: the decoder threw ${decoded.description}` };
  if (loaded.kind === 'value') {
    if (decoded.kind !== 'value')
      return { outcome: 'disagree', failure: `${what}: loads from a file, not from memory` };
    return same(loaded.value, decoded.value)
      ? { outcome: 'loaded' }
      : { outcome: 'disagree', failure: `${what}: loads differently from a file` };
  }
  const e = loaded.error;
  if (decoded.kind !== 'rejected')
    return { outcome: 'disagree', failure: `${what}: decodes in memory, not from a file` };
  if (
    e.code !== decoded.error.code ||
    e.message !== `${path}: ${decoded.error.message}` ||
    !(e.cause instanceof KilnError)
  )
    return {
      outcome: 'disagree',
      failure: `${what}: the file error ${JSON.stringify(e.message)} is not the decoder's`,
    };
  return { outcome: 'rejected' };
}

describe('file loaders under mutation', () => {
  it(`loadGraphFile loads what deserializeGraph does, or fails as it does, each of ${CASES} cases within ${BOUND_MS} ms`, async () => {
    const target: FuzzTarget = { sources: [serializeGraph(graph())], framed: true };
    const report = await runCampaignAsync({
      cases: CASES,
      seed: SEED,
      boundMs: BOUND_MS,
      run: (seed) =>
        fileCase(seed, target, loadGraphFile, deserializeGraph, (a, b) => printGraph(a) === printGraph(b)),
    });
    console.log(formatCampaign('graph file fuzz', report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    expect(report.outcomes.get('rejected') ?? 0).toBeGreaterThan(CASES / 2);
  });

  it(`loadCheckpointFile loads what decodeCheckpoint does, or fails as it does, each of ${CASES} cases within ${BOUND_MS} ms`, async () => {
    const target: FuzzTarget = { sources: [encodeCheckpoint(checkpoint)], framed: true };
    const reencoded = (cp: Checkpoint) => Buffer.from(encodeCheckpoint(cp)).toString('hex');
    const report = await runCampaignAsync({
      cases: CASES,
      seed: SEED,
      boundMs: BOUND_MS,
      run: (seed) =>
        fileCase(seed, target, loadCheckpointFile, decodeCheckpoint, (a, b) => reencoded(a) === reencoded(b)),
    });
    console.log(formatCampaign('checkpoint file fuzz', report));
    expect(report.failures.slice(0, 20)).toEqual([]);
    expect(report.outcomes.get('rejected') ?? 0).toBeGreaterThan(CASES / 2);
    expect(report.outcomes.get('loaded') ?? 0).toBeGreaterThan(0);
  });
});
