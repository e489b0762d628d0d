import { isDType } from '../dtype.js';
import { HostTensor } from '../host-tensor.js';
import { describeDecoded, quote } from '../serialize/describe.js';
import { serializationError } from '../serialize/error.js';
import { type FrameFormat, readFrame, writeFrame } from '../serialize/frame.js';
import { packPayload, unpackPayload } from '../serialize/msgpack.js';
import { isPlainObject } from '../serialize/plain-object.js';
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
  const payload = unpackPayload(readFrame(bytes, CHECKPOINT_FRAME));
  if (!isPlainObject(payload) || !Array.isArray(payload.variables)) throw bad('no variable list');
  const variables: Record<string, HostTensor> = Object.create(null);
  for (const [i, entry] of (payload.variables as unknown[]).entries()) {
    if (!Array.isArray(entry) || entry.length !== 4)
      throw bad(`variable entry ${i} is not [name, dtype, shape, bytes]`);
    const [name, dtype, shape, data] = entry as unknown[];
    if (typeof name !== 'string' || name.length > 4096) throw bad(`variable entry ${i} has no name`);
    const where = `variable ${quote(name)}`;
    if (Object.hasOwn(variables, name)) throw bad(`${where} appears twice`);
    // Values from the bytes reach messages only through describeDecoded: String() of a value
    // nested thousands deep overflows the stack instead of rejecting the file.
    if (!isDType(dtype)) throw bad(`${where} has dtype ${describeDecoded(dtype)}`);
    if (
      !Array.isArray(shape) ||
      shape.length > MAX_RANK ||
      !shape.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 31)
    ) {
      throw bad(`${where} has an invalid shape`);
    }
    // msgpack has a float -0, which passes as a size of 0; the tensor gets the integer.
    const dims = (shape as number[]).map((d) => d + 0);
    if (!(data instanceof Uint8Array)) throw bad(`${where} has no data bytes`);
    // The size is checked against bytes already present, so a forged shape allocates nothing.
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.byteLength !== size * elementBytes(dtype)) {
      throw bad(`${where}: ${data.byteLength} bytes for shape [${dims.join(',')}] of ${dtype}`);
    }
    // As in a graph's constants (attrs.ts): a kernel may test a bool with === 1.
    if (dtype === 'bool' && data.some((x) => x > 1)) throw bad(`${where}: bool data must be 0 or 1`);
    variables[name] = new HostTensor(dtype, dims, fromLittleEndianBytes(dtype, data));
  }
  const metadata: Record<string, string | number> = {};
  const raw = payload.metadata ?? {};
  // A plain map only: a typed array or a date read as one would lose or invent entries.
  if (!isPlainObject(raw)) throw bad(`metadata is ${describeDecoded(raw)}, not a map`);
  for (const [k, v] of Object.entries(raw)) {
    // msgpackr already renames this key; refusing it here keeps the guard independent of that.
    if (k === '__proto__') throw bad(`'__proto__' cannot name a metadata entry`);
    if (typeof v !== 'string' && typeof v !== 'number')
      throw bad(`metadata ${quote(k)} is ${describeDecoded(v)}, not a string or number`);
    // msgpack writers (msgpackr among them) write -0 as the integer 0, so a -0 read here would
    // not survive being saved again: it is read as the 0 it will become.
    metadata[k] = v === 0 ? 0 : v;
  }
  return { variables, metadata };
}
