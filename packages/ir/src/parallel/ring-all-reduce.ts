import { add, concat, reshape, slice } from '../api/ops.js';
import { KilnError } from '../errors.js';
import type { Graph, SymbolicTensor } from '../graph/builder.js';
import { formatType, sizeOf } from '../shape.js';

const fail = (message: string) => new KilnError('invalid-argument', message);

/**
 * Checks the device list of a collective: at least one, each a non-empty name, none twice (two
 * replicas on one device would make "the value on devices[r]" ambiguous).
 */
export function checkDevices(devices: readonly string[], where: string): void {
  if (devices.length < 1) throw fail(`${where}: needs at least one device, got none`);
  const seen = new Set<string>();
  for (const [r, d] of devices.entries()) {
    if (typeof d !== 'string' || d.length === 0)
      throw fail(`${where}: device ${r} must be a non-empty name, got ${JSON.stringify(d)}`);
    if (seen.has(d)) throw fail(`${where}: device '${d}' is listed twice`);
    seen.add(d);
  }
}

/** Chunk c of a length split into n parts, the first `length % n` one element longer. */
export function chunkBounds(length: number, n: number): { begin: number; size: number }[] {
  const base = Math.floor(length / n);
  const longer = length % n;
  const out: { begin: number; size: number }[] = [];
  let begin = 0;
  for (let c = 0; c < n; c++) {
    const size = base + (c < longer ? 1 : 0);
    out.push({ begin, size });
    begin += size;
  }
  return out;
}

/** Where chunk c's sum is finished: the reduce-scatter ring starts it on c and ends one short. */
export const chunkOwner = (c: number, n: number) => (c + n - 1) % n;

/**
 * The most elements a ring moves as one value (4 MiB of float32). A larger chunk travels as
 * pieces, each reduced by its own chain of adds: a device adds the first piece it receives while
 * the next ones are still on the wire, and sends it on, so transfers and adds overlap along the
 * ring instead of each step waiting for a whole chunk. A piece is large enough that what each
 * value costs apart from its bytes (a message, a partition to run: a few tenths of a millisecond)
 * stays small beside moving it; 1 MiB pieces measured slower on a 2-core machine.
 */
export const RING_PIECE_ELEMENTS = 1 << 20;

/** A chunk of a flat bucket after the reduce-scatter: its bounds and its sum, on its owner. */
export interface ReducedChunk {
  readonly c: number;
  readonly begin: number;
  readonly size: number;
  readonly owner: number;
  /** The chunk's sum on its owner, as the sums of its pieces in order (one, for a small chunk). */
  readonly pieces: readonly SymbolicTensor[];
}

/**
 * The reduce-scatter half of a ring all-reduce over 1-D values of equal length, flat[r] on
 * devices[r]: each non-empty chunk summed once, on its owner, piece by piece. Nodes are built in
 * device scopes only, so plan() turns each cross-device read into one send/recv pair.
 */
export function ringReduceScatter(
  g: Graph,
  flat: readonly SymbolicTensor[],
  devices: readonly string[],
  pieceElements = RING_PIECE_ELEMENTS,
): ReducedChunk[] {
  if (!Number.isInteger(pieceElements) || pieceElements < 1)
    throw fail(`ringAllReduce: pieceElements must be a positive integer, got ${pieceElements}`);
  const n = devices.length;
  const length = flat[0]!.shape[0] as number;
  // Empty chunks (a length below n) take no part: they would only add zero-sized transfers.
  const chunks = chunkBounds(length, n)
    .map((bounds, c) => ({ ...bounds, c }))
    .filter(({ size }) => size > 0);
  const pieces = chunks.flatMap(({ c, begin, size }) =>
    chunkBounds(size, n === 1 ? 1 : Math.ceil(size / pieceElements)).map((piece) => ({
      c,
      begin: begin + piece.begin,
      size: piece.size,
    })),
  );
  const local = flat.map((v, r) =>
    g.onDevice(devices[r]!, () =>
      pieces.map(({ begin, size }) => (n === 1 ? v : slice(v, [begin], [size], 'ringAllReduce/chunk'))),
    ),
  );
  // The partial sum of chunk c starts as device c's piece and walks the ring; at step s it is on
  // device c+s, and device c+s+1 adds its own piece to it. So chunk c is summed in one fixed order
  // (c, c+1, ..., c-1), once, on one device: the result is the same every run and is not
  // recomputed per replica, which is what makes the replicas' sums bit-identical. Its pieces
  // follow the same order, each on its own.
  const partial = pieces.map(({ c }, k) => local[c]![k]!);
  for (let s = 0; s < n - 1; s++) {
    for (const [k, { c }] of pieces.entries()) {
      const r = (c + s + 1) % n;
      partial[k] = g.onDevice(devices[r]!, () => add(partial[k]!, local[r]![k]!, 'ringAllReduce/add'));
    }
  }
  return chunks.map(({ c, begin, size }) => ({
    c,
    begin,
    size,
    owner: chunkOwner(c, n),
    pieces: partial.filter((_, k) => pieces[k]!.c === c),
  }));
}

/** A reduced chunk's sum as one value on its owner (its pieces joined where it has several). */
export function chunkSum(g: Graph, chunk: ReducedChunk, devices: readonly string[]): SymbolicTensor {
  if (chunk.pieces.length === 1) return chunk.pieces[0]!;
  return g.onDevice(devices[chunk.owner]!, () => concat(chunk.pieces, 0, 'ringAllReduce/join'));
}

/**
 * The all-gather half: every device reads each chunk from its owner and concatenates them. The
 * partitioner sends a value once per destination device, so an owner sends its chunk (length/n)
 * to the n-1 others: with the n-1 chunks it sent while reducing, each device sends 2(n-1)/n of the
 * bucket in total, as a ring all-reduce does (bandwidth-optimal). The chunks travel owner -> reader
 * directly instead of hop by hop: no extra bytes and one step of latency instead of n-1, though
 * the gather then uses every link, not only the ring's neighbour links. A single chunk is still
 * concatenated (a copy) on the devices that do not own it, so every result is a value of its own
 * device, where the caller will read it.
 */
export function allGather(
  g: Graph,
  chunks: readonly SymbolicTensor[],
  devices: readonly string[],
): SymbolicTensor[] {
  return devices.map((device) =>
    g.onDevice(device, () =>
      chunks.length === 1 && chunks[0]!.node.device === device
        ? chunks[0]!
        : concat(chunks, 0, 'ringAllReduce/gather'),
    ),
  );
}

/** How a ring all-reduce is cut up. */
export interface RingOptions {
  /** The most elements moved as one value (default RING_PIECE_ELEMENTS). */
  readonly pieceElements?: number;
}

/** A ring all-reduce over 1-D values of equal length: reduce-scatter, then all-gather. */
function ringAllReduceFlat(
  g: Graph,
  flat: readonly SymbolicTensor[],
  devices: readonly string[],
  options: RingOptions,
) {
  const chunks = ringReduceScatter(g, flat, devices, options.pieceElements);
  if (chunks.length === 0) return flat.slice();
  // Every device gathers the pieces themselves, each as soon as it is summed.
  return allGather(
    g,
    chunks.flatMap((k) => k.pieces),
    devices,
  );
}

/** Tensors flattened and concatenated into one 1-D bucket (one tensor stays as it is, flattened). */
export function packBucket(ts: readonly SymbolicTensor[]): SymbolicTensor {
  const flat = ts.map((t) =>
    t.shape.length === 1 ? t : reshape(t, [sizeOf(t.shape as number[])], 'bucketAllReduce/flatten'),
  );
  return flat.length === 1 ? flat[0]! : concat(flat, 0, 'bucketAllReduce/pack');
}

/** The inverse of packBucket: a bucket split back into tensors shaped like `like`. */
export function unpackBucket(bucket: SymbolicTensor, like: readonly SymbolicTensor[]): SymbolicTensor[] {
  let offset = 0;
  return like.map((t) => {
    const size = sizeOf(t.shape as number[]);
    const part = like.length === 1 ? bucket : slice(bucket, [offset], [size], 'bucketAllReduce/unpack');
    offset += size;
    return t.shape.length === 1 ? part : reshape(part, t.shape as number[], 'bucketAllReduce/unflatten');
  });
}

/** Checks the values of a collective: one per device, one graph, one known type. */
function checkValues(g: Graph, values: readonly SymbolicTensor[], devices: readonly string[], where: string) {
  checkDevices(devices, where);
  if (values.length !== devices.length)
    throw fail(`${where}: ${values.length} values for ${devices.length} devices; need one per device`);
  const first = values[0]!;
  for (const [r, v] of values.entries()) {
    if (v.graph !== g) throw fail(`${where}: value ${r} (${v}) belongs to another graph`);
    if (v.dtype === 'bool')
      throw fail(`${where}: value ${r} is ${formatType(v.type)}; bool cannot be summed`);
    if (!v.shape.every((d) => d !== null))
      throw fail(`${where}: value ${r} is ${formatType(v.type)}; its shape must be known`);
    const same =
      v.dtype === first.dtype &&
      v.shape.length === first.shape.length &&
      v.shape.every((d, i) => d === first.shape[i]);
    if (!same)
      throw fail(`${where}: value ${r} is ${formatType(v.type)} but value 0 is ${formatType(first.type)}`);
  }
}

/**
 * The elementwise sum of `values` (values[r] computed on devices[r], all of one shape), as a ring
 * all-reduce expressed in IR ops: returns, for each r, the sum on devices[r]. Every replica gets
 * bit-identical sums, in the same order run after run (see ringAllReduceFlat).
 */
export function ringAllReduce(
  g: Graph,
  values: readonly SymbolicTensor[],
  devices: readonly string[],
  options: RingOptions = {},
): SymbolicTensor[] {
  checkValues(g, values, devices, 'ringAllReduce');
  const shape = values[0]!.shape as number[];
  const length = sizeOf(shape);
  const flatten = (v: SymbolicTensor) =>
    shape.length === 1 ? v : reshape(v, [length], 'ringAllReduce/flatten');
  const flat = values.map((v, r) => g.onDevice(devices[r]!, () => flatten(v)));
  return ringAllReduceFlat(g, flat, devices, options).map((sum, r) =>
    g.onDevice(devices[r]!, () =>
      shape.length === 1 ? sum : reshape(sum, shape, 'ringAllReduce/unflatten'),
    ),
  );
}

/**
 * All-reduces many tensors per replica with one ring: each replica's tensors are flattened into
 * one bucket (perReplica[r] on devices[r], the same shapes in the same order on every replica),
 * and the summed bucket is split back. One ring moves the same bytes as one per tensor in far
 * fewer, larger transfers. Returns the sums in perReplica's layout.
 */
export function bucketAllReduce(
  g: Graph,
  perReplica: readonly (readonly SymbolicTensor[])[],
  devices: readonly string[],
  options: RingOptions = {},
): SymbolicTensor[][] {
  checkDevices(devices, 'bucketAllReduce');
  if (perReplica.length !== devices.length)
    throw fail(
      `bucketAllReduce: ${perReplica.length} replicas for ${devices.length} devices; need one per device`,
    );
  const count = perReplica[0]!.length;
  for (const [r, ts] of perReplica.entries())
    if (ts.length !== count)
      throw fail(`bucketAllReduce: replica ${r} has ${ts.length} tensors, replica 0 has ${count}`);
  if (count === 0) return perReplica.map(() => []);
  // Tensor i must match across replicas; checkValues names the replica that does not.
  for (let i = 0; i < count; i++)
    checkValues(
      g,
      perReplica.map((ts) => ts[i]!),
      devices,
      `bucketAllReduce (tensor ${i})`,
    );
  const first = perReplica[0]!;
  const dtype = first[0]!.dtype;
  for (const [i, t] of first.entries())
    if (t.dtype !== dtype)
      throw fail(
        `bucketAllReduce: tensor ${i} is ${formatType(t.type)}; a bucket holds one dtype (${dtype})`,
      );
  const buckets = perReplica.map((ts, r) => g.onDevice(devices[r]!, () => packBucket(ts)));
  const sums = ringAllReduceFlat(g, buckets, devices, options);
  return sums.map((sum, r) => g.onDevice(devices[r]!, () => unpackBucket(sum, first)));
}
