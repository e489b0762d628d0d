import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostTensor, KilnError, Prng } from '@kiln/ir';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  batchRows,
  Dataset,
  epochOrder,
  mixSeed,
  stepsPerEpoch,
  writeSafetensors,
} from '../../src/data/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-dataset-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Shard {
  x: HostTensor; // float32 [r, 3, 2]
  y: HostTensor; // int32 [r]
  m: HostTensor; // bool [r, 4]
}

function makeShard(rows: number, rng: Prng): Shard {
  return {
    x: HostTensor.fromFlat(
      Array.from({ length: rows * 6 }, () => rng.normal()),
      [rows, 3, 2],
    ),
    y: HostTensor.fromFlat(
      Array.from({ length: rows }, () => rng.int(-1000, 1000)),
      [rows],
      'int32',
    ),
    m: HostTensor.fromFlat(
      Array.from({ length: rows * 4 }, () => (rng.bool() ? 1 : 0)),
      [rows, 4],
      'bool',
    ),
  };
}

function writeShards(rowCounts: number[], seed = 1): { paths: string[]; shards: Shard[] } {
  const rng = new Prng(seed);
  const shards = rowCounts.map((n) => makeShard(n, rng));
  const paths = shards.map((s, i) => {
    const path = join(dir, `shard-${i}.safetensors`);
    writeSafetensors(path, { ...s });
    return path;
  });
  return { paths, shards };
}

/** The rows at `indices` of the shards' tensor `name` concatenated, gathered in memory. */
function gather(shards: Shard[], name: keyof Shard, indices: ArrayLike<number>): number[] {
  const rows: number[][] = [];
  for (const s of shards) {
    const t = s[name];
    const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
    for (let r = 0; r < t.shape[0]!; r++) rows.push(Array.from(t.data.subarray(r * per, (r + 1) * per)));
  }
  return Array.from(indices).flatMap((i) => rows[i]!);
}

describe('Dataset', () => {
  it('concatenates shards along rows', () => {
    const { paths, shards } = writeShards([5, 0, 7, 3]);
    const data = Dataset.open(paths);
    try {
      expect(data.rows).toBe(15);
      expect(data.shardRows).toEqual([5, 0, 7, 3]);
      expect(data.tensors).toEqual({
        x: { dtype: 'float32', rowShape: [3, 2] },
        y: { dtype: 'int32', rowShape: [] },
        m: { dtype: 'bool', rowShape: [4] },
      });
      const all = Array.from({ length: 15 }, (_, i) => i);
      for (const name of ['x', 'y', 'm'] as const) {
        const t = data.readRows(name, all);
        expect(t.shape).toEqual([15, ...data.tensors[name]!.rowShape]);
        expect(Array.from(t.data)).toEqual(gather(shards, name, all));
      }
      // Rows 3..6 cross from shard 0 over the empty shard into shard 2: one read per shard touched.
      const before = data.stats.reads;
      const across = data.readRows('x', [3, 4, 5, 6]);
      expect(data.stats.reads - before).toBe(2);
      expect(Array.from(across.data)).toEqual(gather(shards, 'x', [3, 4, 5, 6]));
      const batch = data.readBatch([14, 0]);
      expect(Object.keys(batch)).toEqual(['x', 'y', 'm']);
      expect(Array.from(batch.y!.data)).toEqual(gather(shards, 'y', [14, 0]));
      expect(data.readRows('y', []).shape).toEqual([0]);
    } finally {
      data.close();
    }
  });

  it('gathers random row lists exactly as an in-memory gather', () => {
    const { paths, shards } = writeShards([17, 1, 0, 40, 9], 7);
    const data = Dataset.open(paths);
    const rng = new Prng(2024);
    try {
      for (let trial = 0; trial < 200; trial++) {
        const indices: number[] = [];
        const k = rng.int(0, 30);
        while (indices.length < k) {
          // Runs of consecutive rows (which coalesce, sometimes across shards) and single rows.
          const start = rng.int(0, data.rows - 1);
          const run = rng.bool(0.4) ? rng.int(1, 12) : 1;
          for (let r = start; r < Math.min(start + run, data.rows) && indices.length < k; r++)
            indices.push(r);
        }
        const list = rng.bool() ? Int32Array.from(indices) : indices;
        for (const name of ['x', 'y', 'm'] as const)
          expect(Array.from(data.readRows(name, list).data)).toEqual(gather(shards, name, indices));
      }
    } finally {
      data.close();
    }
  });

  it('refuses bad row indices and unknown tensors', () => {
    const { paths } = writeShards([4, 4]);
    const data = Dataset.open(paths);
    try {
      expect(() => data.readRows('x', [8])).toThrow(/row index 8 \(at position 0\) is not within its 8 rows/);
      expect(() => data.readRows('x', [0, -1])).toThrow(KilnError);
      expect(() => data.readRows('x', [0.5])).toThrow(KilnError);
      expect(() => data.readRows('z', [0])).toThrow(/no tensor 'z'/);
      expect(() => data.readRows('toString', [0])).toThrow(/no tensor 'toString'/);
    } finally {
      data.close();
    }
  });

  it('refuses shards that do not fit together, naming the shard and the tensor', () => {
    const rng = new Prng(3);
    const a = join(dir, 'a.safetensors');
    writeSafetensors(a, { ...makeShard(3, rng) });
    const write = (name: string, tensors: Record<string, HostTensor>) => {
      const path = join(dir, name);
      writeSafetensors(path, tensors);
      return path;
    };
    const { x, y, m } = makeShard(2, rng);
    const cases: [string, RegExp][] = [
      [
        write('missing.safetensors', { x, y }),
        /missing.safetensors has no tensor 'm', which shard .*a.safetensors has/,
      ],
      [
        write('extra.safetensors', { x, y, m, z: y }),
        /extra.safetensors has tensor 'z', which shard .*a.safetensors does not/,
      ],
      [
        write('dtype.safetensors', { x, y: HostTensor.zeros('float32', [2]), m }),
        /dtype.safetensors: tensor 'y' is float32 \[2\], but in shard .*a.safetensors its rows are int32 \[\]/,
      ],
      [
        write('shape.safetensors', { x: HostTensor.zeros('float32', [2, 2, 3]), y, m }),
        /shape.safetensors: tensor 'x' is float32 \[2,2,3\], but .* its rows are float32 \[3,2\]/,
      ],
      [
        write('rows.safetensors', { x, y: HostTensor.zeros('int32', [5]), m }),
        /rows.safetensors: tensor 'y' has 5 rows but 'x' has 2/,
      ],
    ];
    for (const [path, message] of cases) {
      const e = (() => {
        try {
          Dataset.open([a, path]).close();
        } catch (error) {
          return error;
        }
        throw new Error(`${path} was accepted`);
      })();
      expect(e).toBeInstanceOf(KilnError);
      expect((e as KilnError).message).toMatch(message);
    }
    const scalar = write('scalar.safetensors', { s: HostTensor.zeros('float32', []) });
    expect(() => Dataset.open(scalar)).toThrow(/scalar.safetensors: tensor 's' is a scalar/);
    expect(() => Dataset.open(write('none.safetensors', {}))).toThrow(/holds no tensors/);
    expect(() => Dataset.open([])).toThrow(/no shard paths/);
    expect(() => Dataset.open([a, join(dir, 'absent.safetensors')])).toThrow(/absent.safetensors/);
  });

  it('reads rows of a large file with memory growth well below its size', () => {
    // 64 MiB of float32 rows of 4 KiB, written in 1 MiB chunks so no large buffer exists before we measure.
    const rows = 16384;
    const cols = 1024;
    const path = join(dir, 'large.safetensors');
    const header = new TextEncoder().encode(
      JSON.stringify({ x: { dtype: 'F32', shape: [rows, cols], data_offsets: [0, rows * cols * 4] } }),
    );
    const headerLength = Math.ceil(header.length / 8) * 8;
    const head = new Uint8Array(8 + headerLength).fill(0x20);
    new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
    head.set(header, 8);
    const chunk = new Float32Array(256 * cols);
    const fd = openSync(path, 'w');
    writeSync(fd, head);
    for (let r = 0; r < rows; r += 256) {
      for (let i = 0; i < 256; i++) chunk.fill(r + i, i * cols, (i + 1) * cols);
      writeSync(fd, new Uint8Array(chunk.buffer));
    }
    closeSync(fd);
    const fileSize = head.length + rows * cols * 4;

    const used = () => {
      const m = process.memoryUsage();
      return m.arrayBuffers + m.external;
    };
    const baseline = used();
    let peak = 0;
    const data = Dataset.open(path);
    try {
      const order = epochOrder(rows, 5, 0);
      // 16 batches of 64 rows spread over the whole file (about 4 MiB read in all).
      for (let step = 0; step < 16; step++) {
        const batch = data.readRows('x', batchRows(order, 64, step));
        const picked = batchRows(order, 64, step);
        expect(batch.data[0]).toBe(picked[0]);
        expect(batch.data[63 * cols + 5]).toBe(picked[63]);
        peak = Math.max(peak, used() - baseline);
      }
    } finally {
      data.close();
    }
    expect(peak).toBeLessThan(fileSize / 4);
  });
});

describe('epochOrder', () => {
  const isPermutation = (order: Int32Array) => {
    const seen = new Uint8Array(order.length);
    for (const i of order) {
      if (i < 0 || i >= order.length || seen[i]) return false;
      seen[i] = 1;
    }
    return true;
  };

  it('is a permutation that depends only on (seed, epoch)', () => {
    for (const n of [0, 1, 2, 10, 1000]) {
      const order = epochOrder(n, 42, 3);
      expect(order.length).toBe(n);
      expect(isPermutation(order)).toBe(true);
      expect(epochOrder(n, 42, 3)).toEqual(order);
    }
    const base = epochOrder(1000, 42, 3);
    expect(epochOrder(1000, 42, 4)).not.toEqual(base);
    expect(epochOrder(1000, 43, 3)).not.toEqual(base);
    // The pair the naive seed * 1000 + epoch confuses.
    expect(epochOrder(1000, 0, 1000)).not.toEqual(epochOrder(1000, 1, 0));
    // Pinned: the order must be the same on every machine and in every later version.
    expect(Array.from(epochOrder(10, 1, 0))).toEqual([2, 3, 6, 4, 0, 8, 9, 7, 5, 1]);
  });

  it('gives distinct Prng seeds for nearby (seed, epoch) pairs', () => {
    const seen = new Set<number>();
    for (let seed = -32; seed < 96; seed++)
      for (let epoch = 0; epoch < 128; epoch++) seen.add(mixSeed(seed, epoch));
    expect(seen.size).toBe(128 * 128);
    expect(mixSeed(2 ** 40, 0)).not.toBe(mixSeed(0, 0));
  });

  it('refuses bad arguments', () => {
    expect(() => epochOrder(-1, 0, 0)).toThrow(KilnError);
    expect(() => epochOrder(10, 0.5, 0)).toThrow(/seed/);
    expect(() => epochOrder(10, 0, -1)).toThrow(/epoch/);
  });
});

describe('batchRows', () => {
  it('cuts an epoch into batches, the last one short', () => {
    const order = epochOrder(10, 9, 0);
    expect(stepsPerEpoch(10, 4)).toBe(3);
    expect(Array.from(batchRows(order, 4, 0))).toEqual(Array.from(order.subarray(0, 4)));
    expect(batchRows(order, 4, 2).length).toBe(2);
    expect(() => batchRows(order, 4, 3)).toThrow(/step 3 is not within the 3 steps/);
    expect(() => batchRows(order, 0, 0)).toThrow(/batch size 0/);
  });
});
