import { KilnError } from '@kiln/ir';
import { Packr } from 'msgpackr';
import { DEFAULT_MAX_FRAME_BYTES } from '../net/link.js';
import { readMsgpack, readTailFrame, splitTails, TAIL_FRAME, tailFrameParts } from '../net/tail-frame.js';
import {
  type FromWorker,
  type PeerMessage,
  parseFromWorker,
  parsePeerMessage,
  parseToWorker,
  type ToWorker,
} from './protocol.js';

/**
 * Protocol messages as binary frames for a byte stream (a WebSocket): msgpack, with tensor bytes
 * as msgpack binary (no base64, no per-element encoding). Decoding refuses oversized frames before
 * parsing and validates the message after, so a hostile peer gets an error, not a crash.
 */
const packr = new Packr({ useRecords: false, moreTypes: false });

export { DEFAULT_MAX_FRAME_BYTES } from '../net/link.js';

/**
 * A message as the parts of one frame, to send in order: one msgpack buffer, or, where it holds
 * large byte arrays (tensors), a tail frame whose tails are those arrays themselves, not copies.
 */
export function encodeFrameParts(message: unknown): Uint8Array[] {
  const { header, tails } = splitTails(message);
  if (tails.length === 0) return [packr.pack(message)];
  return tailFrameParts(packr.pack([tails.map((t) => t.byteLength), header]), tails);
}

/** A message as one frame (its parts joined). */
export function encodeFrame(message: ToWorker | FromWorker | PeerMessage): Uint8Array {
  const parts = encodeFrameParts(message);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A frame's one msgpack value, size-checked and decoded by the hardened reader, not yet validated. */
export function decodeFrame(frame: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): unknown {
  if (!(frame instanceof Uint8Array)) throw new KilnError('protocol', 'protocol: a frame must be bytes');
  if (frame.byteLength > maxBytes)
    throw new KilnError(
      'protocol',
      `protocol: a ${frame.byteLength}-byte frame exceeds the ${maxBytes}-byte limit`,
    );
  // The same hardened reader as graph files: one value filling the frame, no structured-clone
  // references, and bytes left over rejected without rendering the value.
  return frame[0] === TAIL_FRAME ? readTailFrame(frame, readMsgpack) : readMsgpack(frame);
}

export function decodeToWorker(frame: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): ToWorker {
  return parseToWorker(decodeFrame(frame, maxBytes));
}

export function decodeFromWorker(frame: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): FromWorker {
  return parseFromWorker(decodeFrame(frame, maxBytes));
}

export function decodePeer(frame: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): PeerMessage {
  return parsePeerMessage(decodeFrame(frame, maxBytes));
}
