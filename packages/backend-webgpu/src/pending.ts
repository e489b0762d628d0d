import { handledIfCancelled, type KilnError } from '@kiln/ir';

interface Entry {
  readonly what: string;
  readonly settle: (error: KilnError) => void;
}

/**
 * The device's work in flight (reads, writes, compiles, runs), each with what it is doing. WebGPU
 * leaves promises of a destroyed device pending or rejects them with bare DOMExceptions, and Dawn
 * may do either; so when the device goes away kiln settles every one itself, with a KilnError
 * naming the work, and a test that waits too long can say what it was waiting for.
 */
export class PendingWork {
  private readonly entries = new Set<Entry>();
  /** The work itself, cancelled or not, until it settles: Dawn must stay up to answer it. */
  private readonly running = new Set<Promise<unknown>>();

  /** `work`, unless `cancel` settles it first; the work's own later outcome is then dropped. */
  track<T>(what: string, work: Promise<T>): Promise<T> {
    let entry!: Entry;
    const out = new Promise<T>((resolve, reject) => {
      entry = { what, settle: reject };
      work.then(
        (v) => {
          this.entries.delete(entry);
          resolve(v);
        },
        (e: unknown) => {
          this.entries.delete(entry);
          reject(e);
        },
      );
    });
    this.entries.add(entry);
    this.follow(work);
    // Work that disposal cut short, or that was asked for after it, is the owner's doing.
    return handledIfCancelled(out);
  }

  /** Counts `work` as running until it settles, without making it cancellable (an allocation). */
  follow(work: Promise<unknown>): void {
    this.running.add(work);
    const done = () => this.running.delete(work);
    work.then(done, done);
  }

  /** Resolves once every piece of work tracked so far has settled, cancelled ones included. */
  async drained(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** What is in flight now, oldest first. */
  get descriptions(): string[] {
    return [...this.entries].map((e) => e.what);
  }

  /** Rejects everything in flight with `error(what)`. */
  cancel(error: (what: string) => KilnError): void {
    const entries = [...this.entries];
    this.entries.clear();
    for (const e of entries) e.settle(error(e.what));
  }
}
