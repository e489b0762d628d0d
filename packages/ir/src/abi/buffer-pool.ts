import type { HostArray } from '../dtype.js';

/**
 * Freed ArrayBuffers kept for reuse, by exact size. A fresh ArrayBuffer costs far more than its
 * bytes. A large one: the allocator maps new pages and each first touch faults (an 8 MiB one costs
 * about 5 ms on a small machine, where copying into a resident one takes 0.7), and each adds
 * external memory pressure that brings on garbage collections. A tiny one: V8 makes a backing store
 * and accounts for it, about half a microsecond, which was a third of an eager op. Partitions run
 * many times on a worker and eager code repeats its shapes, so a buffer freed in one step is the
 * next step's. Like the caching allocators of PyTorch and TensorFlow, minus the splitting: exact
 * sizes only, and the pool bounded in bytes and in buffers of each size.
 */
export const POOL_CAPACITY_BYTES = 256 * 2 ** 20;
/** Buffers kept of any one size: enough for the live set of a step, not a leak's worth. */
export const POOL_PER_SIZE = 256;

/** The buffers kept of one size, each with the typed array over all of it that came back with it. */
interface SizeClass {
  readonly buffers: ArrayBuffer[];
  readonly arrays: (HostArray | undefined)[];
}

export class BufferPool {
  private readonly free = new Map<number, SizeClass>();
  private held = 0;
  /**
   * The typed array over the whole of the buffer the last `take` returned, if one was given back
   * with it: a buffer bound again as it was before needs no new array (an eager op's result is
   * bound once, and that array cost as much as the rest of its allocation).
   */
  takenArray: HostArray | undefined;

  constructor(
    private readonly capacityBytes = POOL_CAPACITY_BYTES,
    private readonly perSize = POOL_PER_SIZE,
  ) {}

  /**
   * A buffer of exactly this size, if one is kept: zeroed as a fresh one is, unless the caller
   * is about to write every byte of it (`zeroed: false`).
   */
  take(byteLength: number, zeroed = true): ArrayBuffer | undefined {
    const kept = this.free.get(byteLength);
    const buffer = kept?.buffers.pop();
    const array = kept?.arrays.pop();
    this.takenArray = array;
    if (!buffer) return undefined;
    this.held -= byteLength;
    if (zeroed) (array ?? new Uint8Array(buffer)).fill(0);
    return buffer;
  }

  /**
   * Keeps a freed buffer, unless the pool is full (then it is left to the GC), with `array` if it
   * is a typed array over all of its memory: `length` bytes from `start` (see takenArray).
   */
  give(buffer: ArrayBuffer, array?: HostArray, start = 0, length = buffer.byteLength - start): void {
    const n = buffer.byteLength;
    if (n === 0 || this.held + n > this.capacityBytes) return;
    let kept = this.free.get(n);
    if (!kept) this.free.set(n, (kept = { buffers: [], arrays: [] }));
    if (kept.buffers.length >= this.perSize) return;
    const whole = array?.buffer === buffer && array.byteOffset === start && array.byteLength === length;
    kept.buffers.push(buffer);
    kept.arrays.push(whole ? array : undefined);
    this.held += n;
  }

  /** Bytes kept for reuse now. */
  get bytes(): number {
    return this.held;
  }

  clear(): void {
    this.free.clear();
    this.held = 0;
    this.takenArray = undefined;
  }
}
