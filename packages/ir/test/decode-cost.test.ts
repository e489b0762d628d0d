import {
  crc32,
  decodeCheckpoint,
  deserializeGraph,
  encodeCheckpoint,
  Graph,
  HostTensor,
  KilnError,
  serializeGraph,
} from '@kiln/ir';
import { afterEach, describe, expect, it, vi } from 'vitest';

/**
 * Rejecting bad bytes must cost no more than accepting good ones. msgpackr's plain `unpack`, given
 * one byte too many, renders the whole decoded value with JSON.stringify for its error message: 17 s
 * and 0.8 GB for a 16 MB graph. These cases are 16 MB files with one byte appended and the header
 * repaired (length and CRC), so only the msgpack layer can notice.
 */

const ELEMENTS = 4 << 20; // 16 MB of float32

/** `bytes` (a framed file) with one more payload byte and a header that vouches for it. */
function withTrailingByte(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 0xc0;
  const view = new DataView(out.buffer);
  view.setUint32(8, out.length - 16, true);
  view.setUint32(12, crc32(out.subarray(16)), true);
  return out;
}

function bigGraph(): Uint8Array {
  const g = new Graph();
  const data = new Float32Array(ELEMENTS).map((_, i) => i * 0.5);
  g.output('c', g.constant({ dtype: 'float32', shape: [ELEMENTS], data }));
  return serializeGraph(g);
}

function bigCheckpoint(): Uint8Array {
  const w = new HostTensor('float32', [ELEMENTS], new Float32Array(ELEMENTS).fill(0.25));
  return encodeCheckpoint({ variables: { w }, metadata: { step: 1 } });
}

function millis(f: () => void): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

const rejection = (f: () => unknown): KilnError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a rejection');
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe.each([
  ['graph', bigGraph, deserializeGraph],
  ['checkpoint', bigCheckpoint, decodeCheckpoint],
] as const)('a 16 MB %s with one byte too many', (_, make, decode) => {
  it('is rejected without rendering the decoded value', () => {
    const bad = withTrailingByte(make());
    const stringify = vi.spyOn(JSON, 'stringify');
    const e = rejection(() => decode(bad));
    expect(e.code).toBe('serialization');
    expect(e.message).toMatch(/1 byte left over after the msgpack value/);
    expect(stringify).not.toHaveBeenCalled();
  });

  it('is rejected in about the time a valid file takes to load', () => {
    const good = make();
    const bad = withTrailingByte(good);
    // Medians of three, interleaved; the bound is loose (the fault was 250 times slower).
    const accept: number[] = [];
    const reject: number[] = [];
    for (let i = 0; i < 3; i++) {
      accept.push(millis(() => decode(good)));
      reject.push(millis(() => rejection(() => decode(bad))));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    expect(median(reject)).toBeLessThan(3 * median(accept) + 250);
  });
});
