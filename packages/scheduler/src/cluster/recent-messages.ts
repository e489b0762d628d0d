import type { FromWorker, ToWorker } from './protocol.js';

/**
 * What a worker remembers of the messages it handled, so a message sent twice (a coordinator that
 * re-sends after a lost connection) is answered or refused, never carried out twice: a request by
 * its id, a run's partition by (run, partition), and the runs already committed or released. The
 * memory is bounded: the oldest entries go first, far older than any re-send.
 */
export class RecentMessages {
  /** Insertion-ordered, so the first key is the oldest. */
  private readonly seen = new Map<string, FromWorker | null>();

  constructor(private readonly capacity = 4096) {}

  /** The key a message is remembered by; null for messages that are safe to handle again. */
  static key(message: ToWorker): string | null {
    if ('request' in message) return `request ${message.request}`;
    if (message.t === 'run') return `run ${message.run} ${message.partition}`;
    return null;
  }

  has(key: string): boolean {
    return this.seen.has(key);
  }

  /** The reply given to the message remembered under `key`, if it was worth keeping. */
  reply(key: string): FromWorker | null {
    return this.seen.get(key) ?? null;
  }

  /**
   * Remembers a handled message with its reply. Replies that carry tensors are not kept (they
   * would hold their memory for as long as the id is remembered); a duplicate of one is refused.
   */
  remember(key: string, reply: FromWorker | null): void {
    const carriesTensors = reply?.t === 'variables' || reply?.t === 'done';
    this.seen.delete(key);
    this.seen.set(key, carriesTensors ? null : reply);
    while (this.seen.size > this.capacity) this.seen.delete(this.seen.keys().next().value!);
  }

  /** Records that a run was committed or released: a partition of it that arrives later is refused. */
  ended(run: number): void {
    this.remember(`ended ${run}`, null);
  }

  hasEnded(run: number): boolean {
    return this.seen.has(`ended ${run}`);
  }
}
