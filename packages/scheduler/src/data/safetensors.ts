/**
 * The safetensors format (https://github.com/huggingface/safetensors), read and written for kiln's
 * dtypes: an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each tensor's
 * dtype, shape and `data_offsets` (relative to the data section), then the data, row-major and
 * little-endian.
 *
 * The I/O is synchronous and positional on purpose: a training step reads a batch as a few
 * coalesced reads, usually from the page cache, where a Promise per read costs more than the read,
 * and a synchronous reader lets `readRows` hand back the tensor itself.
 */

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  type ConcreteShape,
  checkedShape,
  clip,
  DTYPE_INFO,
  type DType,
  formatShape,
  HostTensor,
  KilnError,
  MAX_RANK,
} from '@kiln/ir';

/** The longest header kiln reads, as the reference implementation: more is not a header but an attack. */
export const MAX_HEADER_BYTES = 100_000_000;

/** The safetensors names of the dtypes kiln stores. */
const FILE_DTYPE: { readonly [D in DType]: string } = { float32: 'F32', int32: 'I32', bool: 'BOOL' };
const KILN_DTYPE: ReadonlyMap<string, DType> = new Map([
  ['F32', 'float32'],
  ['I32', 'int32'],
  ['BOOL', 'bool'],
]);
/** dtypes the format defines that kiln has no storage for, so an error can tell them from garbage. */
const FOREIGN_DTYPES = new Set([
  'F64',
  'F16',
  'BF16',
  'I64',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F6_E2M3',
  'F6_E3M2',
  'F4',
  'C64',
]);
const SUPPORTED = 'F32, I32, BOOL';
const METADATA_KEY = '__metadata__';
/** The largest single read or write: Node refuses lengths past 2 GiB - 1. */
const IO_CHUNK = 1 << 30;
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One tensor as a safetensors file describes it. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: ConcreteShape;
  /** Where the tensor's bytes start, from the start of the file (not of the data section). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Counters for tests and profiling: how many positional reads, and how many bytes they read. */
export interface ReadStats {
  reads: number;
  bytesRead: number;
}

/**
 * Writes `tensors` as a safetensors file, atomically: to a temporary file in the same directory,
 * synced, then renamed over `path`, so a crash never leaves half a dataset where a good one was.
 *
 * As the reference implementation does, the header is padded with spaces to a multiple of 8 bytes
 * and the tensors are laid out by element size (largest first), then name, with no gaps: every
 * tensor starts at a multiple of its element size from the start of the file. Each tensor's bytes
 * are written straight from its data, never gathered into one buffer. Gives the file's size.
 */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, HostTensor>>,
  metadata?: Readonly<Record<string, string>>,
): number {
  const where = `writeSafetensors(${path})`;
  if (typeof tensors !== 'object' || tensors === null)
    throw new KilnError('invalid-argument', `${where}: tensors must be an object of HostTensors`);
  const named = Object.entries(tensors).map(([name, tensor]) => {
    if (name === METADATA_KEY)
      throw new KilnError('invalid-argument', `${where}: '${METADATA_KEY}' is reserved for metadata`);
    if (!(tensor instanceof HostTensor))
      throw new KilnError('invalid-argument', `${where}: tensor '${clip(name)}' is not a HostTensor`);
    return { name, tensor };
  });
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null)
      throw new KilnError('invalid-argument', `${where}: metadata must be an object of strings`);
    for (const [key, value] of Object.entries(metadata))
      if (typeof value !== 'string')
        throw new KilnError(
          'invalid-argument',
          `${where}: metadata '${clip(key)}' is a ${typeof value}, not a string`,
        );
  }
  named.sort(
    (a, b) =>
      DTYPE_INFO[b.tensor.dtype].bytes - DTYPE_INFO[a.tensor.dtype].bytes ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  let offset = 0;
  const entries: [string, unknown][] = metadata === undefined ? [] : [[METADATA_KEY, { ...metadata }]];
  for (const { name, tensor } of named) {
    const end = offset + tensor.data.byteLength;
    entries.push([
      name,
      { dtype: FILE_DTYPE[tensor.dtype], shape: [...tensor.shape], data_offsets: [offset, end] },
    ]);
    offset = end;
  }
  // fromEntries defines each key as data, so a tensor called '__proto__' is a tensor, not a prototype.
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(entries)));
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx');
  try {
    writeFully(fd, head);
    for (const { tensor } of named) writeFully(fd, littleEndianBytes(tensor));
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return head.byteLength + offset;
}

/**
 * Opens a safetensors file and checks its header whole: the length, the JSON, every dtype, shape
 * and offset, and that the tensors tile the data section exactly. Anything wrong is a KilnError
 * naming the file and what was wrong; nothing is allocated from a length before it is checked.
 * The file stays open for positional reads until `close()`.
 */
export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new KilnError('invalid-argument', `cannot open safetensors file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw malformed(path, 'is not a regular file');
    const header = readHeader(path, fd, stat.size);
    return new SafetensorsFile(path, fd, header.entries, header.metadata);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** An open safetensors file: what it holds, and positional reads of whole tensors or of rows. */
export class SafetensorsFile {
  /** The tensors in file order. */
  readonly tensors: readonly SafetensorsEntry[];
  readonly stats: ReadStats = { reads: 0, bytesRead: 0 };
  private readonly byName: ReadonlyMap<string, SafetensorsEntry>;
  private fd: number | null;

  /** @internal use openSafetensors, which checks the header. */
  constructor(
    readonly path: string,
    fd: number,
    entries: readonly SafetensorsEntry[],
    /** The header's `__metadata__` (empty where it has none). */
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.fd = fd;
    this.tensors = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  get names(): string[] {
    return this.tensors.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The entry for `name`; an error listing the names there are if the file has no such tensor. */
  tensor(name: string): SafetensorsEntry {
    const entry = this.byName.get(name);
    if (entry === undefined) {
      const names = this.names.map((n) => `'${clip(n)}'`);
      throw new KilnError(
        'invalid-argument',
        `${this.path}: no tensor '${clip(String(name))}' (it has ${names.length === 0 ? 'none' : clip(names.join(', '), 200)})`,
      );
    }
    return entry;
  }

  /** The number of rows (dimension 0) of a tensor; a scalar has none. */
  rowsOf(name: string): number {
    const entry = this.tensor(name);
    if (entry.shape.length === 0)
      throw new KilnError(
        'invalid-argument',
        `${this.path}: tensor '${clip(name)}' is a scalar; it has no rows`,
      );
    return entry.shape[0]!;
  }

  /** A whole tensor, in one read. */
  readTensor(name: string): HostTensor {
    const entry = this.tensor(name);
    const out = allocate(entry.dtype, entry.shape, `${this.path}: tensor '${clip(name)}'`);
    this.read(new Uint8Array(out.data.buffer), entry.byteOffset, entry.dtype);
    return out;
  }

  /** Rows [start, start + count) of a tensor along dimension 0, in one read. */
  readRowRange(name: string, start: number, count: number): HostTensor {
    const entry = this.tensor(name);
    const out = allocate(
      entry.dtype,
      [count, ...entry.shape.slice(1)],
      `${this.path}: rows of '${clip(name)}'`,
    );
    this.readRowBytes(name, start, count, new Uint8Array(out.data.buffer), 0);
    return out;
  }

  /**
   * The rows at `rows` (in that order, repeats allowed) of a tensor, shape [k, ...rowShape]. Runs
   * of consecutive indices are read with one positional read each, straight into the result.
   */
  readRows(name: string, rows: ArrayLike<number>): HostTensor {
    const entry = this.tensor(name);
    const total = this.rowsOf(name);
    const out = allocate(
      entry.dtype,
      [rows.length, ...entry.shape.slice(1)],
      `${this.path}: rows of '${clip(name)}'`,
    );
    const bytes = new Uint8Array(out.data.buffer);
    const rowBytes = entry.byteLength / Math.max(total, 1);
    for (let i = 0; i < rows.length; ) {
      const first = checkedRow(rows, i, total, `${this.path}: tensor '${clip(name)}'`);
      let j = i + 1;
      while (j < rows.length && rows[j] === rows[j - 1]! + 1 && rows[j]! < total) j++;
      this.readRowBytes(name, first, j - i, bytes, i * rowBytes);
      i = j;
    }
    return out;
  }

  /**
   * Reads rows [start, start + count) of a tensor into `into` at `at`: the one read behind the
   * row readers, for callers (a Dataset) that gather into a buffer of their own.
   */
  readRowBytes(name: string, start: number, count: number, into: Uint8Array, at: number): void {
    const entry = this.tensor(name);
    const total = this.rowsOf(name);
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(count) ||
      start < 0 ||
      count < 0 ||
      start + count > total
    )
      throw new KilnError(
        'invalid-argument',
        `${this.path}: rows [${start}, ${start} + ${count}) of tensor '${clip(name)}' are not within its ${total} rows`,
      );
    const rowBytes = total === 0 ? 0 : entry.byteLength / total;
    const length = count * rowBytes;
    if (!Number.isSafeInteger(at) || at < 0 || at + length > into.byteLength)
      throw new KilnError('invalid-argument', `${this.path}: ${length} bytes do not fit the buffer at ${at}`);
    this.read(into.subarray(at, at + length), entry.byteOffset + start * rowBytes, entry.dtype);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Fills `target` from `position`, made host-order and (for bool) 0 or 1. */
  private read(target: Uint8Array, position: number, dtype: DType): void {
    if (this.fd === null) throw new KilnError('invalid-argument', `${this.path}: read after close()`);
    if (target.byteLength === 0) return;
    let done = 0;
    while (done < target.byteLength) {
      const n = readSync(
        this.fd,
        target,
        done,
        Math.min(target.byteLength - done, IO_CHUNK),
        position + done,
      );
      this.stats.reads++;
      if (n === 0)
        throw malformed(
          this.path,
          `ends at byte ${position + done}, before byte ${position + target.byteLength}: it was truncated after it was opened`,
        );
      done += n;
      this.stats.bytesRead += n;
    }
    if (dtype === 'bool') for (let i = 0; i < target.length; i++) target[i] = target[i] === 0 ? 0 : 1;
    else if (!HOST_LITTLE_ENDIAN) swapBytes(target, DTYPE_INFO[dtype].bytes);
  }
}

/** A KilnError for a file that is not a valid safetensors file, naming the file. */
function malformed(path: string, what: string): KilnError {
  return new KilnError('serialization', `safetensors file ${path}: ${what}`);
}

function readHeader(
  path: string,
  fd: number,
  fileSize: number,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  if (fileSize < 8)
    throw malformed(path, `is ${fileSize} bytes long, too short for the 8-byte header length (truncated?)`);
  const prefix = new Uint8Array(8);
  readSync(fd, prefix, 0, 8, 0);
  const declared = new DataView(prefix.buffer).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES))
    throw malformed(
      path,
      `header length ${declared} is more than ${MAX_HEADER_BYTES} bytes: not a safetensors file`,
    );
  const headerLength = Number(declared);
  if (8 + headerLength > fileSize)
    throw malformed(
      path,
      `header length ${headerLength} reaches past the end of the file (${fileSize} bytes): truncated, or not a safetensors file`,
    );
  const raw = new Uint8Array(headerLength);
  if (headerLength > 0 && readSync(fd, raw, 0, headerLength, 8) !== headerLength)
    throw malformed(path, `header could not be read whole (the file changed while opening?)`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw malformed(path, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw malformed(path, `header is not JSON (${clip((e as Error).message, 80)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw malformed(
      path,
      `header is ${Array.isArray(json) ? 'an array' : json === null ? 'null' : `a ${typeof json}`}, not a JSON object`,
    );

  let metadata: Record<string, string> = {};
  const entries: (SafetensorsEntry & { begin: number; end: number })[] = [];
  const dataStart = 8 + headerLength;
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) metadata = checkedMetadata(path, value);
    else entries.push({ ...checkedEntry(path, name, value, dataStart), begin: 0, end: 0 });
  }
  const dataLength = fileSize - dataStart;
  for (const e of entries) {
    e.begin = e.byteOffset - dataStart;
    e.end = e.begin + e.byteLength;
    if (e.end > dataLength)
      throw malformed(
        path,
        `tensor '${clip(e.name)}' data_offsets [${e.begin}, ${e.end}] reach past the end of the data section (${dataLength} bytes): the file is truncated or the offsets are wrong`,
      );
  }
  // The tensors must tile the data section exactly, as the reference reader requires.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: (typeof entries)[number] | undefined;
  for (const e of entries) {
    if (e.begin < cursor)
      throw malformed(
        path,
        `tensors '${clip(previous!.name)}' [${previous!.begin}, ${previous!.end}] and '${clip(e.name)}' [${e.begin}, ${e.end}] overlap`,
      );
    if (e.begin > cursor)
      throw malformed(path, `bytes [${cursor}, ${e.begin}) of the data section belong to no tensor`);
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength)
    throw malformed(
      path,
      `the data section has ${dataLength - cursor} bytes after the last tensor (${dataLength} in all, tensors end at ${cursor})`,
    );
  return { entries: entries.map(({ begin: _b, end: _e, ...entry }) => entry), metadata };
}

function checkedMetadata(path: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw malformed(path, `'${METADATA_KEY}' is not an object of strings`);
  const pairs = Object.entries(value);
  for (const [key, v] of pairs)
    if (typeof v !== 'string')
      throw malformed(path, `'${METADATA_KEY}' entry '${clip(key)}' is ${describe(v)}, not a string`);
  // fromEntries defines each key as data: a '__proto__' key stays a key.
  return Object.fromEntries(pairs) as Record<string, string>;
}

function checkedEntry(path: string, name: string, value: unknown, dataStart: number): SafetensorsEntry {
  const what = `tensor '${clip(name)}'`;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw malformed(path, `${what} is ${describe(value)}, not an object with dtype, shape and data_offsets`);
  const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };

  const fileDtype = info.dtype;
  const dtype = typeof fileDtype === 'string' ? KILN_DTYPE.get(fileDtype) : undefined;
  if (dtype === undefined) {
    if (typeof fileDtype === 'string' && FOREIGN_DTYPES.has(fileDtype))
      throw new KilnError(
        'unsupported',
        `safetensors file ${path}: ${what} has dtype ${fileDtype}, which kiln does not support (it reads ${SUPPORTED})`,
      );
    throw malformed(
      path,
      `${what} has dtype ${typeof fileDtype === 'string' ? JSON.stringify(clip(fileDtype)) : describe(fileDtype)}, not a dtype kiln reads (${SUPPORTED})`,
    );
  }

  const shape = info.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw malformed(
      path,
      `${what} shape ${Array.isArray(shape) ? `[${clip(shape.map((d) => JSON.stringify(d) ?? String(d)).join(','), 80)}]` : describe(shape)} is not a list of non-negative integers`,
    );
  if (shape.length > MAX_RANK)
    throw new KilnError(
      'unsupported',
      `safetensors file ${path}: ${what} has ${shape.length} dimensions, more than the ${MAX_RANK} a kiln tensor may have`,
    );
  const dims = shape as number[];
  const elements = dims.includes(0) ? 0 : dims.reduce((n, d) => n * d, 1);
  const byteLength = elements * DTYPE_INFO[dtype].bytes;
  if (!Number.isSafeInteger(byteLength))
    throw malformed(path, `${what} shape ${formatShape(dims)} is too large to be in a file`);

  const offsets = info.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  )
    throw malformed(
      path,
      `${what} data_offsets ${Array.isArray(offsets) ? `[${clip(offsets.map((o) => JSON.stringify(o) ?? String(o)).join(','), 80)}]` : describe(offsets)} are not [begin, end] with 0 <= begin <= end`,
    );
  const [begin, end] = offsets as [number, number];
  if (end - begin !== byteLength)
    throw malformed(
      path,
      `${what} data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${fileDtype} ${formatShape(dims)} takes ${byteLength}`,
    );
  return { name, dtype, shape: dims, byteOffset: dataStart + begin, byteLength };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(clip(v))}`;
  return typeof v === 'object' ? 'an object' : `the ${typeof v} ${String(v)}`;
}

/** The first row of a run, checked to be a row of the tensor. */
function checkedRow(rows: ArrayLike<number>, i: number, total: number, where: string): number {
  const row = rows[i]!;
  if (!Number.isInteger(row) || row < 0 || row >= total)
    throw new KilnError(
      'invalid-argument',
      `${where}: row index ${String(row)} (at position ${i}) is not within its ${total} rows`,
    );
  return row;
}

/** A zeroed tensor of a shape checked (size included) before anything is allocated for it. */
function allocate(dtype: DType, shape: ConcreteShape, where: string): HostTensor {
  return HostTensor.zeros(dtype, checkedShape(dtype, shape, where));
}

/** A tensor's bytes in file order: a view of its data on a little-endian host, a swapped copy otherwise. */
function littleEndianBytes(tensor: HostTensor): Uint8Array {
  const view = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const size = DTYPE_INFO[tensor.dtype].bytes;
  if (HOST_LITTLE_ENDIAN || size === 1) return view;
  const copy = view.slice();
  swapBytes(copy, size);
  return copy;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

function writeFully(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; )
    done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, IO_CHUNK));
}
