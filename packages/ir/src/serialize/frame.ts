import { crc32 } from './crc32.js';
import { serializationError } from './error.js';

/**
 * The fixed header in front of every serialized graph, all integers little-endian:
 *
 *   offset 0   4 bytes  magic "KILN"
 *   offset 4   u16      format version
 *   offset 6   u16      flags, reserved: must be 0
 *   offset 8   u32      payload length in bytes
 *   offset 12  u32      CRC-32 of the payload
 *   offset 16  payload  (msgpack, see format.ts)
 *
 * The length and checksum are checked before the payload is decoded, so truncated or damaged files
 * are named as such instead of surfacing as a confusing msgpack error.
 */
export const GRAPH_MAGIC = 'KILN';
export const GRAPH_FORMAT_VERSION = 1;
export const GRAPH_HEADER_BYTES = 16;

/** Which file a frame holds: graphs and checkpoints share the header, not the magic. */
export interface FrameFormat {
  /** Four ASCII characters. */
  readonly magic: string;
  readonly version: number;
  /** For messages: "kiln graph", "kiln checkpoint". */
  readonly what: string;
}

export const GRAPH_FRAME: FrameFormat = {
  magic: GRAPH_MAGIC,
  version: GRAPH_FORMAT_VERSION,
  what: 'kiln graph',
};

const magicBytes = (magic: string) => Uint8Array.from(magic, (c) => c.charCodeAt(0));

/** Prepends the header to a payload. */
export function writeFrame(payload: Uint8Array, format: FrameFormat = GRAPH_FRAME): Uint8Array {
  const bytes = new Uint8Array(GRAPH_HEADER_BYTES + payload.length);
  const view = new DataView(bytes.buffer);
  bytes.set(magicBytes(format.magic), 0);
  view.setUint16(4, format.version, true);
  view.setUint16(6, 0, true);
  view.setUint32(8, payload.length, true);
  view.setUint32(12, crc32(payload), true);
  bytes.set(payload, GRAPH_HEADER_BYTES);
  return bytes;
}

const hex = (n: number, digits: number) => `0x${n.toString(16).padStart(digits, '0')}`;

/** Checks the header and returns the payload (a view into `bytes`, not a copy). */
export function readFrame(bytes: Uint8Array, format: FrameFormat = GRAPH_FRAME): Uint8Array {
  const what = format.what;
  if (!(bytes instanceof Uint8Array)) {
    throw serializationError(`not a ${what}: expected a Uint8Array, got ${describeInput(bytes)}`);
  }
  if (bytes.length < GRAPH_HEADER_BYTES) {
    throw serializationError(
      `not a ${what} (too short): ${bytes.length} bytes, less than the ${GRAPH_HEADER_BYTES}-byte header`,
    );
  }
  if (!magicBytes(format.magic).every((b, i) => bytes[i] === b)) {
    throw serializationError(
      `not a ${what} (bad magic): starts with ${hex(readU32BE(bytes), 8)}, expected "${format.magic}"`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== format.version) {
    throw serializationError(
      `format version ${version} is not supported (this kiln reads version ${format.version})`,
    );
  }
  const flags = view.getUint16(6, true);
  if (flags !== 0) {
    throw serializationError(
      `unsupported header flags ${hex(flags, 4)} (format version ${format.version} requires 0)`,
    );
  }
  // The declared length is checked against what is actually there before anything is decoded or
  // allocated, so a forged length cannot make the reader wait for or reserve bytes that never come.
  const declared = view.getUint32(8, true);
  const present = bytes.length - GRAPH_HEADER_BYTES;
  if (declared > present) {
    throw serializationError(`truncated: header says ${declared} payload bytes, ${present} present`);
  }
  if (declared < present) {
    throw serializationError(
      `trailing bytes: header says ${declared} payload bytes, ${present} present (${present - declared} extra)`,
    );
  }
  const payload = bytes.subarray(GRAPH_HEADER_BYTES);
  const expected = view.getUint32(12, true);
  const actual = crc32(payload);
  if (expected !== actual) {
    throw serializationError(
      `checksum mismatch (corrupted bytes): header says ${hex(expected, 8)}, payload has ${hex(actual, 8)}`,
    );
  }
  return payload;
}

function readU32BE(bytes: Uint8Array): number {
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

function describeInput(x: unknown): string {
  return typeof x === 'object' ? Object.prototype.toString.call(x) : typeof x;
}
