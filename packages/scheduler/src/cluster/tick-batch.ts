/** Where messages to a thread go: the Worker itself, or a thread's port to its parent. */
interface ThreadEnd {
  postMessage(value: unknown): void;
}

/**
 * Posts what one tick sends to a thread as one message: the array of them. Each post between
 * threads wakes the other thread's event loop, and on a machine with fewer cores than busy
 * threads a wake-up waits its turn for a core; a step sends a worker several messages at once (its
 * partitions, then their replies), and batched they cost one wake-up instead of one each. The
 * receiving side takes them apart with `unbatch`, in order.
 */
export class TickBatch {
  private pending: unknown[] = [];

  constructor(private readonly to: ThreadEnd) {}

  post(message: unknown): void {
    this.pending.push(message);
    // A tick queued from a promise callback runs once the promise callbacks have all run, so
    // replies that become ready in one pass leave together.
    if (this.pending.length === 1) process.nextTick(() => this.flush());
  }

  /** Posts what is pending now: before a message that must not overtake it, or a close. */
  flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.to.postMessage(batch.length === 1 ? batch[0] : batch);
  }
}

/** The messages one posted value carries, in order: a batch's, or the value itself. */
export const unbatch = (posted: unknown): readonly unknown[] => (Array.isArray(posted) ? posted : [posted]);
