import { isDType } from '../dtype.js';
import { HostTensor } from '../host-tensor.js';
import { serializationError } from '../serialize/error.js';
import { type FrameFormat, readFrame, writeFrame } from '../serialize/frame.js';
import { packPayload, unpackPayload } from '../serialize/msgpack.js';
import { elementBytes, fromLittleEndianBytes, toLittleEndianBytes } from '../serialize/tensor-bytes.js';
import { MAX_RANK } from '../shape.js';

/**
 * A checkpoint: the values of a model's variables (weights and optimizer state alike) and a little
 * metadata, such as the training step. Same header as graphs (magic, version, length, CRC-32),
 * msgpack inside, every field checked on the way in.
 */
export interface Checkpoint {
  readonly variables: Readonly<Record<string, HostTensor>>;
  readonly metadata: Readonly<Record<string, string | number>>;
}

export const CHECKPOINT_FRAME: FrameFormat = { magic: 'KCKP', version: 1, what: 'kiln checkpoint' };

export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  const variables = Object.entries(checkpoint.variables)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, t]) => [name, t.dtype, [...t.shape], toLittleEndianBytes(t.data).slice()]);
  return writeFrame(packPayload({ variables, metadata: { ...checkpoint.metadata } }), CHECKPOINT_FRAME);
}

const bad = (message: string) => serializationError(`not a valid kiln checkpoint: ${message}`);

export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const payload = unpackPayload(readFrame(bytes, CHECKPOINT_FRAME)) as {
    variables?: unknown;
    metadata?: unknown;
  } | null;
  if (typeof payload !== 'object' || payload === null || !Array.isArray(payload.variables))
    throw bad('no variable list');
  const variables: Record<string, HostTensor> = Object.create(null);
  for (const [i, entry] of (payload.variables as unknown[]).entries()) {
    if (!Array.isArray(entry) || entry.length !== 4)
      throw bad(`variable entry ${i} is not [name, dtype, shape, bytes]`);
    const [name, dtype, shape, data] = entry as unknown[];
    if (typeof name !== 'string' || name.length > 4096) throw bad(`variable entry ${i} has no name`);
    if (Object.hasOwn(variables, name)) throw bad(`variable '${name}' appears twice`);
    if (!isDType(dtype)) throw bad(`variable '${name}' has dtype ${String(dtype)}`);
    if (
      !Array.isArray(shape) ||
      shape.length > MAX_RANK ||
      !shape.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 31)
    ) {
      throw bad(`variable '${name}' has an invalid shape`);
    }
    if (!(data instanceof Uint8Array)) throw bad(`variable '${name}' has no data bytes`);
    // The size is checked against bytes already present, so a forged shape allocates nothing.
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    if (data.byteLength !== size * elementBytes(dtype)) {
      throw bad(
        `variable '${name}': ${data.byteLength} bytes for shape [${(shape as number[]).join(',')}] of ${dtype}`,
      );
    }
    variables[name] = new HostTensor(dtype, shape as number[], fromLittleEndianBytes(dtype, data));
  }
  const metadata: Record<string, string | number> = {};
  const raw = payload.metadata ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('metadata is not a map');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string' && typeof v !== 'number')
      throw bad(`metadata '${k}' is not a string or number`);
    metadata[k] = v;
  }
  return { variables, metadata };
}
