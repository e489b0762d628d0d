import { decodeMsgpack, KilnError } from '@kiln/ir';

/**
 * Large byte arrays (tensor data) travel after a frame's msgpack, not inside it: packing a tensor
 * into msgpack copies it, and at the speed of one memory copy per gigabyte on a small machine
 * that copy costs as much as the network. A tail frame is
 *
 *   0xC1 | u32 LE header length | header msgpack: [tail lengths, message] | pad to 8 | tail 0 |
 *   pad to 8 | tail 1 | ...
 *
 * where each tail stands in the message as `{ "\u0000tail": index }`. 0xC1 is the one byte msgpack
 * never uses, so a frame says by its first byte which kind it is. The receiver's tails are views
 * of the frame, 8-byte aligned relative to it (a float32 view needs no copy); the lengths must
 * account for every byte of the frame, and every marker must name a tail.
 */
export const TAIL_FRAME = 0xc1;
/** Byte arrays at least this long go as tails; smaller ones are cheaper to pack. */
export const TAIL_MIN_BYTES = 16 * 1024;
const MARKER = '\u0000tail';
const MAX_TAILS = 4096;
const MAX_DEPTH = 64;

const align8 = (n: number) => (n + 7) & ~7;

/** Whether the message holds a byte array long enough to go as a tail (most hold none). */
function holdsTail(x: unknown, depth: number): boolean {
  if (x instanceof Uint8Array) return x.byteLength >= TAIL_MIN_BYTES;
  if (depth > MAX_DEPTH || typeof x !== 'object' || x === null) return false;
  if (Array.isArray(x)) return x.some((v) => holdsTail(v, depth + 1));
  for (const k in x) if (holdsTail((x as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

/** The message with its large byte arrays replaced by markers, and those arrays in order. */
export function splitTails(message: unknown): { header: unknown; tails: Uint8Array[] } {
  const tails: Uint8Array[] = [];
  // Control messages (most of them) are packed as they are, with no copy of their structure.
  if (!holdsTail(message, 0)) return { header: message, tails };
  const walk = (x: unknown, depth: number): unknown => {
    if (x instanceof Uint8Array) {
      if (x.byteLength < TAIL_MIN_BYTES) return x;
      tails.push(x);
      return { [MARKER]: tails.length - 1 };
    }
    if (depth > MAX_DEPTH || typeof x !== 'object' || x === null) return x;
    if (Array.isArray(x)) return x.map((v) => walk(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) out[k] = walk(v, depth + 1);
    return out;
  };
  const header = walk(message, 0);
  return { header, tails };
}

/** The parts of a tail frame, to send one after another as one message (tails are not copied). */
export function tailFrameParts(packedHeader: Uint8Array, tails: readonly Uint8Array[]): Uint8Array[] {
  const prefix = 5 + packedHeader.byteLength;
  const head = new Uint8Array(align8(prefix));
  head[0] = TAIL_FRAME;
  new DataView(head.buffer).setUint32(1, packedHeader.byteLength, true);
  head.set(packedHeader, 5);
  const parts: Uint8Array[] = [head];
  for (const t of tails) {
    parts.push(t);
    const pad = align8(t.byteLength) - t.byteLength;
    if (pad > 0) parts.push(new Uint8Array(pad));
  }
  return parts;
}

const refuse = (why: string) => new KilnError('protocol', `protocol: bad tail frame (${why})`);

/** The hardened msgpack reader, its errors as protocol errors. */
export const readMsgpack = (bytes: Uint8Array) =>
  decodeMsgpack(
    bytes,
    (reason, cause) => new KilnError('protocol', `protocol: undecodable frame (${reason})`, { cause }),
  );

/** A tail frame's head: its tails' lengths, its message, and where its first tail starts. */
function readHead(frame: Uint8Array, decode: (bytes: Uint8Array) => unknown) {
  if (frame.byteLength < 5) throw refuse('shorter than its prefix');
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1, true);
  if (5 + length > frame.byteLength) throw refuse('its header runs past the frame');
  const decoded = decode(frame.subarray(5, 5 + length));
  if (!Array.isArray(decoded) || decoded.length !== 2 || !Array.isArray(decoded[0]))
    throw refuse('its header is not [tail lengths, message]');
  const lengths = decoded[0] as unknown[];
  if (lengths.length > MAX_TAILS) throw refuse(`more than ${MAX_TAILS} tails`);
  for (const n of lengths)
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      throw refuse('a tail length is not a size');
  return { lengths: lengths as number[], message: decoded[1] as unknown, tailsAt: align8(5 + length) };
}

/**
 * The whole length of the tail frame that `head` begins, from its header alone: what a receiver
 * needs to take a frame that arrives over several messages (see FrameLink) into one buffer.
 */
export function tailFrameLength(head: Uint8Array): number {
  const { lengths, tailsAt } = readHead(head, readMsgpack);
  return lengths.reduce((at, n) => at + align8(n), tailsAt);
}

/** Reads a tail frame: its header decoded by `decode`, markers replaced by views of the tails. */
export function readTailFrame(frame: Uint8Array, decode: (bytes: Uint8Array) => unknown): unknown {
  const { lengths, message, tailsAt } = readHead(frame, decode);
  const tails: Uint8Array[] = [];
  let at = tailsAt;
  for (const n of lengths) {
    if (at + n > frame.byteLength) throw refuse('a tail runs past the frame');
    tails.push(frame.subarray(at, at + n));
    at = align8(at + n);
  }
  // Every byte accounted for (the sender pads to 8 after each part): nothing rides along.
  const extra = frame.byteLength - at;
  if (extra !== 0)
    throw refuse(
      extra > 0
        ? `${extra} byte${extra === 1 ? '' : 's'} left over after the last tail`
        : 'its last tail is cut short',
    );
  const walk = (x: unknown, depth: number): unknown => {
    if (depth > MAX_DEPTH) throw refuse(`nested deeper than ${MAX_DEPTH}`);
    if (typeof x !== 'object' || x === null || x instanceof Uint8Array) return x;
    if (Array.isArray(x)) return x.map((v) => walk(v, depth + 1));
    const o = x as Record<string, unknown>;
    if (MARKER in o) {
      const i = o[MARKER];
      if (Object.keys(o).length !== 1 || typeof i !== 'number' || !Number.isInteger(i) || !tails[i])
        throw refuse('a marker names no tail');
      return tails[i];
    }
    for (const k of Object.keys(o)) o[k] = walk(o[k], depth + 1);
    return o;
  };
  return walk(message, 0);
}
