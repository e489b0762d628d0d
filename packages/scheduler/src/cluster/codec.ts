import { decodeMsgpack, KilnError } from '@kiln/ir';
import { Packr } from 'msgpackr';
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

/** 1 GiB: larger than any tensor kiln moves in one message, smaller than what would hurt a node. */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 30;

export function encodeFrame(message: ToWorker | FromWorker | PeerMessage): Uint8Array {
  return packr.pack(message);
}

/** Any protocol's message as a frame (the client protocol's, say), with the same settings. */
export const packFrame = (message: unknown): Uint8Array => packr.pack(message);

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
  return decodeMsgpack(
    frame,
    (reason, cause) => new KilnError('protocol', `protocol: undecodable frame (${reason})`, { cause }),
  );
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
