/**
 * Freed ArrayBuffers kept for reuse, by exact size. A fresh large ArrayBuffer costs far more than
 * its bytes: the allocator maps new pages and each first touch faults (an 8 MiB one costs about
 * 5 ms on a small machine, where copying into a resident one takes 0.7), and each adds external
 * memory pressure that brings on garbage collections. Partitions run many times on a worker and
 * eager code repeats its shapes, so a buffer freed in one step is the next step's. Like the
 * caching allocators of PyTorch and TensorFlow, minus the splitting: exact sizes only, small
 * buffers (cheap to make) not kept, and the pool bounded.
 */
export const POOL_MIN_BYTES = 64 * 1024;
export const POOL_CAPACITY_BYTES = 256 * 2 ** 20;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private held = 0;

  constructor(private readonly capacityBytes = POOL_CAPACITY_BYTES) {}

  /** A buffer of exactly this size, zeroed as a fresh one is, if one is kept. */
  take(byteLength: number): ArrayBuffer | undefined {
    if (byteLength < POOL_MIN_BYTES) return undefined;
    const buffer = this.free.get(byteLength)?.pop();
    if (!buffer) return undefined;
    this.held -= byteLength;
    new Uint8Array(buffer).fill(0);
    return buffer;
  }

  /** Keeps a freed buffer, unless it is small or the pool is full (then it is left to the GC). */
  give(buffer: ArrayBuffer): void {
    const n = buffer.byteLength;
    if (n < POOL_MIN_BYTES || this.held + n > this.capacityBytes) return;
    const list = this.free.get(n);
    if (list) list.push(buffer);
    else this.free.set(n, [buffer]);
    this.held += n;
  }

  /** Bytes kept for reuse now. */
  get bytes(): number {
    return this.held;
  }

  clear(): void {
    this.free.clear();
    this.held = 0;
  }
}
