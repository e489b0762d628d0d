import { BufferPool } from '@kiln/ir';

/**
 * Buffers for frames that arrive over several messages (FrameLink), kept for reuse once their
 * reader is done with them. A worker receives the same sizes step after step (an all-reduce's
 * pieces, a layer's activations); a fresh buffer for each costs its page faults, and its external
 * memory brings on garbage collections that on a small machine took more time than the copies.
 * A BufferPool underneath (exact sizes, bounded), minus the zeroing (a frame's bytes fill its
 * buffer in full); only buffers this pool made come back to it.
 */
export class FramePool {
  private readonly pool: BufferPool;
  private readonly made = new WeakSet<ArrayBuffer>();

  constructor(capacityBytes = 64 * 2 ** 20, perSize = 16) {
    this.pool = new BufferPool(capacityBytes, perSize);
  }

  /** A buffer of exactly `length` bytes, not zeroed. */
  take(length: number): Uint8Array {
    const kept = this.pool.take(length, false);
    if (kept) {
      this.made.add(kept);
      return new Uint8Array(kept);
    }
    const buffer = Buffer.allocUnsafeSlow(length).buffer as ArrayBuffer;
    this.made.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /**
   * The reader is done with the frame these bytes are part of: its buffer is kept for the next
   * frame of its size (unless the pool is full), once, and only if this pool made it.
   */
  give(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.made.has(buffer)) return;
    // Kept at most once: a buffer given twice would be handed to two frames.
    this.made.delete(buffer);
    this.pool.give(buffer);
  }

  /** Bytes kept for reuse now. */
  get bytes(): number {
    return this.pool.bytes;
  }
}
