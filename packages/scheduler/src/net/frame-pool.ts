/**
 * Buffers for frames that arrive over several messages (FrameLink), kept for reuse once their
 * reader is done with them. A worker receives the same sizes step after step (an all-reduce's
 * pieces, a layer's activations); a fresh buffer for each costs its page faults, and its external
 * memory brings on garbage collections that on a small machine took more time than the copies.
 * Exact sizes only, bounded in bytes and per size; only buffers this pool made come back to it.
 */
export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly made = new WeakSet<ArrayBuffer>();
  private held = 0;

  constructor(
    private readonly capacityBytes = 64 * 2 ** 20,
    private readonly perSize = 16,
  ) {}

  /** A buffer of exactly `length` bytes, not zeroed (the frame's bytes fill it in full). */
  take(length: number): Uint8Array {
    const kept = this.free.get(length)?.pop();
    if (kept) {
      this.held -= length;
      return new Uint8Array(kept);
    }
    const buffer = Buffer.allocUnsafeSlow(length).buffer as ArrayBuffer;
    this.made.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /**
   * The reader is done with the frame these bytes are part of: its buffer is kept for the next
   * frame of its size, unless the pool is full or the bytes are not a frame of this pool's.
   */
  give(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.made.has(buffer)) return;
    const n = buffer.byteLength;
    const list = this.free.get(n) ?? [];
    if (list.includes(buffer) || list.length >= this.perSize || this.held + n > this.capacityBytes) return;
    list.push(buffer);
    this.free.set(n, list);
    this.held += n;
  }

  /** Bytes kept for reuse now. */
  get bytes(): number {
    return this.held;
  }
}
