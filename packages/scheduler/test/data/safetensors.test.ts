import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostTensor, KilnError, Prng } from '@kiln/ir';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  MAX_HEADER_BYTES,
  openSafetensors,
  type SafetensorsFile,
  writeSafetensors,
} from '../../src/data/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-safetensors-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A file laid out by hand per the public spec: u64 LE length, JSON padded with spaces, data. */
function rawFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + n + data.length).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.set(data, 8 + n);
  return out;
}

function writeRaw(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** The error opening (and reading every tensor of) a file gives, checked to be a KilnError. */
function openError(path: string): KilnError {
  try {
    const file = openSafetensors(path);
    try {
      for (const name of file.names) file.readTensor(name);
    } finally {
      file.close();
    }
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error(`${path} opened without an error`);
}

const f32 = (values: number[], shape: number[]) => HostTensor.fromFlat(values, shape, 'float32');

describe('safetensors round trip', () => {
  it('keeps every dtype, odd shapes and metadata', () => {
    const tensors = {
      weights: f32([1.5, -2, 3.25, 0, Number.POSITIVE_INFINITY, -0.125], [2, 3]),
      ids: HostTensor.fromFlat([7, -1, 2147483647, -2147483648, 0], [5], 'int32'),
      mask: HostTensor.fromFlat([1, 0, 1, 1, 0, 0, 1], [7, 1], 'bool'),
      scalar: f32([42], []),
      empty: HostTensor.zeros('float32', [0, 4]),
      emptyBool: HostTensor.zeros('bool', [3, 0]),
      cube: HostTensor.fromFlat(
        Array.from({ length: 24 }, (_, i) => i * 3 - 5),
        [2, 3, 4],
        'int32',
      ),
    };
    const path = join(dir, 'all.safetensors');
    const bytes = writeSafetensors(path, tensors, { source: 'test', ünï: 'cödé' });
    expect(readFileSync(path).byteLength).toBe(bytes);

    const file = openSafetensors(path);
    try {
      expect(file.metadata).toEqual({ source: 'test', ünï: 'cödé' });
      expect(file.names.sort()).toEqual(Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const back = file.readTensor(name);
        expect(back.dtype).toBe(t.dtype);
        expect(back.shape).toEqual(t.shape);
        expect(back.data).toEqual(t.data);
        const entry = file.tensor(name);
        // Each tensor starts at a multiple of its element size from the start of the file.
        expect(entry.byteOffset % (t.dtype === 'bool' ? 1 : 4)).toBe(0);
        expect(entry.byteLength).toBe(t.data.byteLength);
      }
      expect(file.rowsOf('empty')).toBe(0);
      expect(file.readRows('empty', []).shape).toEqual([0, 4]);
      expect(file.readRowRange('cube', 1, 1).data).toEqual(tensors.cube.data.subarray(12));
      expect(() => file.rowsOf('scalar')).toThrow(/scalar/);
    } finally {
      file.close();
    }
    // The temporary file was renamed, not left behind.
    expect(readdirSync(dir)).toEqual(['all.safetensors']);
  });

  it('writes a file with no tensors and no metadata', () => {
    const path = join(dir, 'none.safetensors');
    writeSafetensors(path, {});
    const bytes = readFileSync(path);
    expect(new TextDecoder().decode(bytes.subarray(8)).trim()).toBe('{}');
    const file = openSafetensors(path);
    expect(file.tensors).toEqual([]);
    expect(file.metadata).toEqual({});
    file.close();
  });

  it('reads rows with coalesced positional reads', () => {
    const values = Array.from({ length: 10 * 3 }, (_, i) => i);
    const path = join(dir, 'rows.safetensors');
    writeSafetensors(path, { x: f32(values, [10, 3]) });
    const file = openSafetensors(path);
    try {
      const before = file.stats.reads;
      const rows = file.readRows('x', [2, 3, 4, 9, 0, 1, 1]);
      // Runs [2,3,4], [9], [0,1], [1]: four reads.
      expect(file.stats.reads - before).toBe(4);
      expect(Array.from(rows.data)).toEqual(
        [2, 3, 4, 9, 0, 1, 1].flatMap((r) => [r * 3, r * 3 + 1, r * 3 + 2]),
      );
      expect(() => file.readRows('x', [10])).toThrow(KilnError);
      expect(() => file.readRows('x', [1.5])).toThrow(/row index 1.5/);
      expect(() => file.readRowRange('x', 8, 3)).toThrow(KilnError);
      expect(() => file.readTensor('nope')).toThrow(/no tensor 'nope'.*'x'/);
    } finally {
      file.close();
    }
    expect(() => file.readTensor('x')).toThrow(/after close/);
  });

  it('refuses bad arguments to the writer without leaving a file', () => {
    const path = join(dir, 'bad.safetensors');
    expect(() => writeSafetensors(path, { __metadata__: f32([1], [1]) })).toThrow(KilnError);
    expect(() => writeSafetensors(path, { x: [1, 2] as unknown as HostTensor })).toThrow(/not a HostTensor/);
    expect(() => writeSafetensors(path, {}, { n: 1 as unknown as string })).toThrow(/metadata 'n'/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('safetensors format', () => {
  it('reads a file built byte by byte from the public spec', () => {
    const data = new Uint8Array(8 + 8 + 3);
    const view = new DataView(data.buffer);
    view.setFloat32(0, 1.5, true);
    view.setFloat32(4, -2, true);
    view.setInt32(8, 7, true);
    view.setInt32(12, -300, true);
    data.set([1, 0, 1], 16);
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"I32","shape":[2,1],"data_offsets":[8,16]},' +
      '"c":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]}}';
    const path = writeRaw('hand.safetensors', rawFile(header, data));
    const file = openSafetensors(path);
    try {
      expect(file.metadata).toEqual({ format: 'pt' });
      expect(Array.from(file.readTensor('a').data)).toEqual([1.5, -2]);
      const b = file.readTensor('b');
      expect(b.dtype).toBe('int32');
      expect(b.shape).toEqual([2, 1]);
      expect(Array.from(b.data)).toEqual([7, -300]);
      expect(file.readTensor('c').toArray()).toEqual([true, false, true]);
      const headerEnd = 8 + Math.ceil(header.length / 8) * 8;
      expect(file.tensor('b')).toEqual({
        name: 'b',
        dtype: 'int32',
        shape: [2, 1],
        byteOffset: headerEnd + 8,
        byteLength: 8,
      });
    } finally {
      file.close();
    }
  });

  it('writes the layout of the spec: padded header, tensors by element size then name, no gaps', () => {
    const path = join(dir, 'layout.safetensors');
    writeSafetensors(
      path,
      {
        c: HostTensor.fromFlat([1, 0, 1], [3], 'bool'),
        b: HostTensor.fromFlat([7, -300], [2, 1], 'int32'),
        a: f32([1.5, -2], [2]),
      },
      { format: 'pt' },
    );
    const bytes = new Uint8Array(readFileSync(path));
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const n = Number(view.getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const json = text.trimEnd();
    expect(text.slice(json.length)).toMatch(/^ *$/);
    expect(n - json.length).toBeLessThan(8);
    expect(JSON.parse(json)).toEqual({
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'I32', shape: [2, 1], data_offsets: [8, 16] },
      c: { dtype: 'BOOL', shape: [3], data_offsets: [16, 19] },
    });
    const data = new DataView(bytes.buffer, bytes.byteOffset + 8 + n);
    expect(bytes.byteLength).toBe(8 + n + 19);
    expect(data.getFloat32(0, true)).toBe(1.5);
    expect(data.getFloat32(4, true)).toBe(-2);
    expect(data.getInt32(8, true)).toBe(7);
    expect(data.getInt32(12, true)).toBe(-300);
    expect(Array.from(bytes.subarray(8 + n + 16))).toEqual([1, 0, 1]);
  });

  it('reads an unpadded header and a tensor called __proto__', () => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setFloat32(0, 3, true);
    const path = writeRaw(
      'proto.safetensors',
      rawFile('{"__proto__":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', data, false),
    );
    const file = openSafetensors(path);
    expect(file.names).toEqual(['__proto__']);
    expect(Array.from(file.readTensor('__proto__').data)).toEqual([3]);
    file.close();
  });
});

describe('malformed safetensors files', () => {
  const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const cases: { name: string; bytes: () => Uint8Array; message: RegExp; code?: string }[] = [
    { name: 'empty file', bytes: () => new Uint8Array(0), message: /too short/ },
    { name: 'short file', bytes: () => new Uint8Array(5), message: /too short/ },
    {
      name: 'absurd header length',
      bytes: () => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, 2n ** 62n, true);
        return b;
      },
      message: new RegExp(`more than ${MAX_HEADER_BYTES}`),
    },
    {
      name: 'header length just past the limit',
      bytes: () => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
        return b;
      },
      message: /more than 100000000/,
    },
    {
      name: 'header length past the end of the file',
      bytes: () => rawFile({}, new Uint8Array(0)).subarray(0, 12),
      message: /header length 8 reaches past the end of the file \(12 bytes\)/,
    },
    {
      name: 'header not UTF-8',
      bytes: () => {
        const b = rawFile('{"a":1}', new Uint8Array(0));
        b[9] = 0xff;
        return b;
      },
      message: /not valid UTF-8/,
    },
    { name: 'header not JSON', bytes: () => rawFile('{"a": ', new Uint8Array(0)), message: /not JSON/ },
    { name: 'empty header', bytes: () => rawFile('', new Uint8Array(0)), message: /not JSON/ },
    {
      name: 'header an array',
      bytes: () => rawFile([1, 2], new Uint8Array(0)),
      message: /an array, not a JSON object/,
    },
    {
      name: 'header null',
      bytes: () => rawFile('null', new Uint8Array(0)),
      message: /null, not a JSON object/,
    },
    {
      name: 'header a string',
      bytes: () => rawFile('"hi"', new Uint8Array(0)),
      message: /a string, not a JSON object/,
    },
    {
      name: 'entry not an object',
      bytes: () => rawFile({ x: 3 }, new Uint8Array(0)),
      message: /tensor 'x' is the number 3, not an object/,
    },
    {
      name: 'dtype kiln does not support',
      bytes: () => rawFile({ w: entry('F16', [2], [0, 4]) }, new Uint8Array(4)),
      message: /tensor 'w' has dtype F16, which kiln does not support \(it reads F32, I32, BOOL\)/,
      code: 'unsupported',
    },
    {
      name: 'dtype that is no dtype',
      bytes: () => rawFile({ w: entry('Q7', [2], [0, 4]) }, new Uint8Array(4)),
      message: /tensor 'w' has dtype "Q7", not a dtype kiln reads \(F32, I32, BOOL\)/,
    },
    {
      name: 'dtype missing',
      bytes: () => rawFile({ w: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      message: /tensor 'w' has dtype missing/,
    },
    {
      name: 'negative dimension',
      bytes: () => rawFile({ w: entry('F32', [-1], [0, 4]) }, new Uint8Array(4)),
      message: /tensor 'w' shape \[-1\] is not a list of non-negative integers/,
    },
    {
      name: 'fractional dimension',
      bytes: () => rawFile({ w: entry('F32', [1.5], [0, 4]) }, new Uint8Array(4)),
      message: /shape \[1.5\]/,
    },
    {
      name: 'string dimension',
      bytes: () => rawFile({ w: entry('F32', ['2'], [0, 8]) }, new Uint8Array(8)),
      message: /shape \["2"\]/,
    },
    {
      name: 'shape not a list',
      bytes: () => rawFile({ w: entry('F32', 4, [0, 16]) }, new Uint8Array(16)),
      message: /shape the number 4 is not a list/,
    },
    {
      name: 'huge shape',
      bytes: () => rawFile({ w: entry('F32', [2 ** 40, 2 ** 40], [0, 4]) }, new Uint8Array(4)),
      message: /too large/,
    },
    {
      name: 'data_offsets not matching the shape',
      bytes: () => rawFile({ w: entry('F32', [2, 3], [0, 20]) }, new Uint8Array(20)),
      message: /tensor 'w' data_offsets \[0, 20\] hold 20 bytes, but F32 \[2,3\] takes 24/,
    },
    {
      name: 'data_offsets backwards',
      bytes: () => rawFile({ w: entry('F32', [1], [8, 4]) }, new Uint8Array(8)),
      message: /data_offsets \[8,4\] are not \[begin, end\]/,
    },
    {
      name: 'data_offsets of the wrong form',
      bytes: () => rawFile({ w: entry('F32', [1], [4]) }, new Uint8Array(4)),
      message: /data_offsets \[4\] are not/,
    },
    {
      name: 'overlapping tensors',
      bytes: () =>
        rawFile({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }, new Uint8Array(12)),
      message: /tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/,
    },
    {
      name: 'tensor outside the data section',
      bytes: () => rawFile({ a: entry('F32', [2], [100, 108]) }, new Uint8Array(8)),
      message: /tensor 'a' data_offsets \[100, 108\] reach past the end of the data section \(8 bytes\)/,
    },
    {
      name: 'truncated data',
      bytes: () => rawFile({ a: entry('I32', [4], [0, 16]) }, new Uint8Array(16)).subarray(0, -3),
      message: /reach past the end of the data section \(13 bytes\): the file is truncated/,
    },
    {
      name: 'a gap between tensors',
      bytes: () =>
        rawFile({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }, new Uint8Array(12)),
      message: /bytes \[4, 8\) of the data section belong to no tensor/,
    },
    {
      name: 'bytes after the last tensor',
      bytes: () => rawFile({ a: entry('F32', [1], [0, 4]) }, new Uint8Array(10)),
      message: /6 bytes after the last tensor/,
    },
    {
      name: 'metadata not strings',
      bytes: () => rawFile({ __metadata__: { epochs: 3 } }, new Uint8Array(0)),
      message: /'__metadata__' entry 'epochs' is the number 3, not a string/,
    },
    {
      name: 'metadata not an object',
      bytes: () => rawFile({ __metadata__: ['a'] }, new Uint8Array(0)),
      message: /'__metadata__' is not an object/,
    },
    {
      name: 'too many dimensions',
      bytes: () => rawFile({ a: entry('F32', new Array(17).fill(1), [0, 4]) }, new Uint8Array(4)),
      message: /17 dimensions/,
      code: 'unsupported',
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}, naming the file`, () => {
      const path = writeRaw(`${c.name.replaceAll(' ', '-')}.safetensors`, c.bytes());
      const e = openError(path);
      expect(e.message).toContain(path);
      expect(e.message).toMatch(c.message);
      expect(e.code).toBe(c.code ?? 'serialization');
    });
  }

  it('refuses a path that is missing or a directory', () => {
    expect(openError(join(dir, 'missing.safetensors')).message).toMatch(/cannot open.*missing.safetensors/);
    expect(openError(dir).message).toMatch(/not a regular file/);
  });

  it('never crashes on mutated bytes: every failure is a KilnError', () => {
    const good = join(dir, 'good.safetensors');
    writeSafetensors(
      good,
      {
        x: f32([1, 2, 3, 4, 5, 6], [3, 2]),
        y: HostTensor.fromFlat([1, 2, 3], [3], 'int32'),
        m: HostTensor.fromFlat([1, 0, 1], [3], 'bool'),
      },
      { k: 'v' },
    );
    const original = new Uint8Array(readFileSync(good));
    const rng = new Prng(99);
    let opened = 0;
    for (let trial = 0; trial < 400; trial++) {
      const bytes = original.slice(0, rng.bool(0.1) ? rng.int(0, original.length) : original.length);
      for (let k = rng.int(1, 4); k > 0 && bytes.length > 0; k--) {
        const at = rng.bool(0.7) ? rng.int(0, Math.min(bytes.length - 1, 120)) : rng.int(0, bytes.length - 1);
        bytes[at] = rng.bool(0.5) ? rng.int(0, 255) : '{}[]",:0123456789-. '.charCodeAt(rng.int(0, 19));
      }
      const path = writeRaw('mutant.safetensors', bytes);
      let file: SafetensorsFile | undefined;
      try {
        file = openSafetensors(path);
        for (const entry of file.tensors) {
          file.readTensor(entry.name);
          if (entry.shape.length > 0 && entry.shape[0]! > 0) file.readRows(entry.name, [0]);
        }
        opened++;
      } catch (e) {
        if (!(e instanceof KilnError)) throw e;
        expect(e.message).toContain(path);
      } finally {
        file?.close();
      }
    }
    // Mutations of the data alone leave a valid file.
    expect(opened).toBeGreaterThan(0);
  });
});
