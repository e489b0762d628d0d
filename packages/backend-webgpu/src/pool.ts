/**
 * Reuses GPU buffers by size class, so a training loop that frees and allocates the same sizes
 * every step stops calling createBuffer after the first. Classes are a quarter of a power of two
 * apart (at most 25% slack); a freed buffer waits in its class until asked for again.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private closed = false;
  /** Buffers made, and handed out again from the pool: for tests and benchmarks. */
  readonly stats = { created: 0, reused: 0, pooledBytes: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    private readonly label: string,
  ) {}

  /** The size class of a request: at least 16 bytes, a multiple of 16. */
  static sizeClass(bytes: number): number {
    if (bytes <= 256) return Math.max(16, Math.ceil(bytes / 16) * 16);
    const step = 2 ** (Math.floor(Math.log2(bytes)) - 2);
    return Math.ceil(bytes / step) * step;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.free.get(size);
    const pooled = list?.pop();
    if (pooled) {
      this.stats.reused++;
      this.stats.pooledBytes -= size;
      return pooled;
    }
    this.stats.created++;
    return this.device.createBuffer({ size, usage: this.usage, label: this.label });
  }

  release(buffer: GPUBuffer): void {
    // Executables and frees may hand buffers back after the device is gone: nothing to keep them for.
    if (this.closed) {
      buffer.destroy();
      return;
    }
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
    this.stats.pooledBytes += buffer.size;
  }

  /** Destroys every pooled buffer, and any released later (buffers handed out stay theirs to release). */
  close(): void {
    this.closed = true;
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.pooledBytes = 0;
  }
}
