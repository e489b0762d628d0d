/**
 * A dataset for training jobs: named tensors in one or more safetensors shards, concatenated
 * along dimension 0 (the sample dimension). Rows are read on demand with positional reads, so a
 * dataset far larger than memory costs only the batches being read, and an epoch's order is a
 * function of (seed, epoch) alone, so a job resumed on another machine sees the same batches.
 */
import {
  type ConcreteShape,
  checkedShape,
  clip,
  DTYPE_INFO,
  type DType,
  formatShape,
  HostTensor,
  KilnError,
  Prng,
} from '@kiln/ir';
import { openSafetensors, type ReadStats, type SafetensorsFile } from './safetensors.js';

/** A dataset tensor: its dtype and the shape of one row (its shape less dimension 0). */
export interface DatasetTensor {
  readonly dtype: DType;
  readonly rowShape: ConcreteShape;
}

/** Row indices are int32 (see epochOrder), so a dataset holds at most this many rows. */
export const MAX_DATASET_ROWS = 2 ** 31 - 1;

export class Dataset {
  /** Total rows over all shards. */
  readonly rows: number;
  /** Each tensor's dtype and row shape, the same in every shard. */
  readonly tensors: Readonly<Record<string, DatasetTensor>>;
  /** Rows per shard, in the order of `paths`. */
  readonly shardRows: readonly number[];
  /** The first global row of each shard, and the total at the end. */
  private readonly starts: readonly number[];
  private lastShard = 0;

  private constructor(
    readonly paths: readonly string[],
    private readonly shards: readonly SafetensorsFile[],
    tensors: Record<string, DatasetTensor>,
    shardRows: number[],
  ) {
    this.tensors = tensors;
    this.shardRows = shardRows;
    const starts = [0];
    for (const n of shardRows) starts.push(starts[starts.length - 1]! + n);
    this.starts = starts;
    this.rows = starts[starts.length - 1]!;
  }

  /**
   * Opens the shards and checks that they fit together: the same tensor names in each, with the
   * same dtype and row shape, and in each shard every tensor with the same number of rows. A shard
   * that does not is an error naming the shard and the tensor; nothing stays open after one.
   */
  static open(paths: string | readonly string[]): Dataset {
    const list = typeof paths === 'string' ? [paths] : [...paths];
    if (list.length === 0) throw new KilnError('invalid-argument', 'Dataset.open: no shard paths given');
    const shards: SafetensorsFile[] = [];
    try {
      for (const path of list) shards.push(openSafetensors(path));
      const { tensors, shardRows } = checkShards(shards);
      return new Dataset(list, shards, tensors, shardRows);
    } catch (e) {
      for (const shard of shards) shard.close();
      throw e;
    }
  }

  get names(): string[] {
    return Object.keys(this.tensors);
  }

  /** Positional reads so far, over all shards. */
  get stats(): ReadStats {
    const total = { reads: 0, bytesRead: 0 };
    for (const shard of this.shards) {
      total.reads += shard.stats.reads;
      total.bytesRead += shard.stats.bytesRead;
    }
    return total;
  }

  /**
   * The rows at `rowIndices` (in that order, repeats allowed) of one tensor, shape
   * [k, ...rowShape], gathered across shards. Each run of consecutive indices within a shard is one
   * positional read, straight into the result: only the result is allocated.
   */
  readRows(name: string, rowIndices: ArrayLike<number>): HostTensor {
    const tensor = this.tensor(name);
    const k = rowIndices.length;
    const shape = checkedShape(tensor.dtype, [k, ...tensor.rowShape], `Dataset: rows of '${clip(name)}'`);
    const out = HostTensor.zeros(tensor.dtype, shape);
    const bytes = new Uint8Array(out.data.buffer);
    const rowBytes = rowElements(tensor) * DTYPE_INFO[tensor.dtype].bytes;
    for (let i = 0; i < k; ) {
      const first = rowIndices[i]!;
      if (!Number.isInteger(first) || first < 0 || first >= this.rows)
        throw new KilnError(
          'invalid-argument',
          `Dataset: row index ${String(first)} (at position ${i}) is not within its ${this.rows} rows`,
        );
      const s = this.shardOf(first);
      const end = this.starts[s + 1]!;
      let j = i + 1;
      while (j < k && rowIndices[j] === rowIndices[j - 1]! + 1 && rowIndices[j]! < end) j++;
      if (rowBytes > 0)
        this.shards[s]!.readRowBytes(name, first - this.starts[s]!, j - i, bytes, i * rowBytes);
      i = j;
    }
    return out;
  }

  /** The rows at `rowIndices` of every tensor (or of `names`): one batch of a training step. */
  readBatch(
    rowIndices: ArrayLike<number>,
    names: readonly string[] = this.names,
  ): Record<string, HostTensor> {
    return Object.fromEntries(names.map((name) => [name, this.readRows(name, rowIndices)]));
  }

  close(): void {
    for (const shard of this.shards) shard.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private tensor(name: string): DatasetTensor {
    if (typeof name !== 'string' || !Object.hasOwn(this.tensors, name))
      throw new KilnError(
        'invalid-argument',
        `Dataset: no tensor '${clip(String(name))}' (it has ${clip(this.names.map((n) => `'${n}'`).join(', '), 200)})`,
      );
    return this.tensors[name]!;
  }

  /** The shard holding global row `row`: the last one asked, else a binary search. */
  private shardOf(row: number): number {
    const last = this.lastShard;
    if (row >= this.starts[last]! && row < this.starts[last + 1]!) return last;
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= row) lo = mid;
      else hi = mid - 1;
    }
    // Empty shards share their start with the next one; the search lands past them.
    this.lastShard = lo;
    return lo;
  }
}

function rowElements(tensor: DatasetTensor): number {
  return tensor.rowShape.reduce((n, d) => n * d, 1);
}

/** The tensors every shard holds alike, and each shard's rows; an error naming what differs. */
function checkShards(shards: readonly SafetensorsFile[]): {
  tensors: Record<string, DatasetTensor>;
  shardRows: number[];
} {
  const first = shards[0]!;
  if (first.tensors.length === 0)
    throw new KilnError('invalid-argument', `Dataset: shard ${first.path} holds no tensors`);
  const tensors: [string, DatasetTensor][] = [];
  for (const entry of first.tensors) {
    if (entry.shape.length === 0)
      throw new KilnError(
        'invalid-argument',
        `Dataset: shard ${first.path}: tensor '${clip(entry.name)}' is a scalar; a dataset tensor needs a row dimension`,
      );
    tensors.push([entry.name, { dtype: entry.dtype, rowShape: entry.shape.slice(1) }]);
  }
  const shardRows: number[] = [];
  let total = 0;
  for (const shard of shards) {
    let rows: { count: number; name: string } | undefined;
    for (const [name, want] of tensors) {
      if (!shard.has(name))
        throw new KilnError(
          'invalid-argument',
          `Dataset: shard ${shard.path} has no tensor '${clip(name)}', which shard ${first.path} has`,
        );
      const got = shard.tensor(name);
      const rowShape = got.shape.slice(1);
      if (
        got.dtype !== want.dtype ||
        got.shape.length === 0 ||
        formatShape(rowShape) !== formatShape(want.rowShape)
      )
        throw new KilnError(
          'invalid-argument',
          `Dataset: shard ${shard.path}: tensor '${clip(name)}' is ${got.dtype} ${formatShape(got.shape)}, but in shard ${first.path} its rows are ${want.dtype} ${formatShape(want.rowShape)}`,
        );
      const count = got.shape[0]!;
      if (rows === undefined) rows = { count, name };
      else if (count !== rows.count)
        throw new KilnError(
          'invalid-argument',
          `Dataset: shard ${shard.path}: tensor '${clip(name)}' has ${count} rows but '${clip(rows.name)}' has ${rows.count}; every tensor of a shard must have the same rows`,
        );
    }
    const extra = shard.names.find((n) => !tensors.some(([name]) => name === n));
    if (extra !== undefined)
      throw new KilnError(
        'invalid-argument',
        `Dataset: shard ${shard.path} has tensor '${clip(extra)}', which shard ${first.path} does not`,
      );
    shardRows.push(rows!.count);
    total += rows!.count;
    if (total > MAX_DATASET_ROWS)
      throw new KilnError(
        'unsupported',
        `Dataset: the shards hold more than ${MAX_DATASET_ROWS} rows (at ${shard.path}); row indices are int32`,
      );
  }
  return { tensors: Object.fromEntries(tensors), shardRows };
}

/**
 * The order of the rows in an epoch: a permutation of 0..rows-1 that depends on (seed, epoch)
 * alone, so every process and machine that resumes a job at an epoch sees the same batches.
 * A Fisher-Yates shuffle driven by kiln's seeded Prng, whose seed mixes (seed, epoch) through a
 * 32-bit hash chain (see mixSeed): for a fixed seed no two epochs below 2^32 share a Prng seed,
 * nor for a fixed epoch any two seeds in [0, 2^32) (unlike seed * 1000 + epoch, where seed 0
 * epoch 1000 is seed 1 epoch 0).
 */
export function epochOrder(rows: number, seed: number, epoch: number): Int32Array {
  if (!Number.isSafeInteger(rows) || rows < 0 || rows > MAX_DATASET_ROWS)
    throw new KilnError(
      'invalid-argument',
      `epochOrder: rows ${rows} is not an integer in [0, ${MAX_DATASET_ROWS}]`,
    );
  if (!Number.isSafeInteger(seed))
    throw new KilnError('invalid-argument', `epochOrder: seed ${seed} is not a safe integer`);
  if (!Number.isSafeInteger(epoch) || epoch < 0)
    throw new KilnError('invalid-argument', `epochOrder: epoch ${epoch} is not a non-negative integer`);
  const rng = new Prng(mixSeed(seed, epoch));
  const order = new Int32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  for (let i = rows - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/**
 * One 32-bit seed from (seed, epoch), each taken as 64 bits. Every step is a bijection of the
 * running hash (xor a word, then an invertible mix), so changing only one word always changes the
 * result.
 */
export function mixSeed(seed: number, epoch: number): number {
  const s = BigInt.asUintN(64, BigInt(seed));
  const e = BigInt.asUintN(64, BigInt(epoch));
  const words = [s & 0xffffffffn, s >> 32n, e & 0xffffffffn, e >> 32n].map(Number);
  let h = 0x6a09e667; // an arbitrary non-zero start (the first word of SHA-256's initial state)
  for (const w of words) h = fmix32((h ^ w) >>> 0);
  return h;
}

/** MurmurHash3's finalizer: a bijection on 32-bit words with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** How many batches of `batchSize` an epoch of `rows` rows has, the last one possibly short. */
export function stepsPerEpoch(rows: number, batchSize: number): number {
  checkBatchSize(batchSize, 'stepsPerEpoch');
  return Math.ceil(rows / batchSize);
}

/**
 * The row indices of step `step` of an epoch, a view into `order`: rows
 * [step * batchSize, (step + 1) * batchSize), the last batch possibly short.
 */
export function batchRows(order: Int32Array, batchSize: number, step: number): Int32Array {
  const steps = stepsPerEpoch(order.length, batchSize);
  if (!Number.isSafeInteger(step) || step < 0 || step >= steps)
    throw new KilnError(
      'invalid-argument',
      `batchRows: step ${step} is not within the ${steps} steps of an epoch of ${order.length} rows in batches of ${batchSize}`,
    );
  return order.subarray(step * batchSize, Math.min((step + 1) * batchSize, order.length));
}

function checkBatchSize(batchSize: number, where: string): void {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1)
    throw new KilnError('invalid-argument', `${where}: batch size ${batchSize} is not a positive integer`);
}
