import { KilnError } from '@kiln/ir';
import type { WireTensor } from './protocol.js';

const slot = (run: number, key: string) => `${run}/${key}`;

/** Runs remembered as ended, so a value that arrives for one late is dropped, not kept forever. */
const ENDED_RUNS = 4096;
/**
 * Values held at once, whatever their size: bytes alone would let a flood of empty tensors under
 * distinct keys grow the table without bound. Far above what any plan has in flight.
 */
export const MAX_HELD_VALUES = 65_536;

/**
 * The rendezvous of the data plane on one worker: values other workers pushed here, by (run, key),
 * and the partitions waiting for them. A value may arrive before or after the partition that reads
 * it is dispatched (the two travel different paths: peer to peer, and through the coordinator),
 * so whichever comes second completes the pair. A run that ends (committed, released) drops what
 * it left here and fails what still waits. What arrives is bounded in bytes: a peer cannot grow
 * this worker's memory past its limit by pushing values no partition reads, in bytes or in count.
 */
/** What became of a pushed value: taken, or dropped; `overflow` when it would not fit. */
export type Delivery = { readonly dropped: null } | { readonly dropped: string; readonly overflow: boolean };

export class PeerInbox {
  /** Values not yet read, with the peer connection each came from. */
  private readonly arrived = new Map<string, { readonly tensor: WireTensor; readonly from: object }>();
  private readonly waiting = new Map<string, { resolve(t: WireTensor): void; reject(e: KilnError): void }>();
  private readonly ended = new Set<number>();
  private bytes = 0;

  constructor(
    private readonly worker: () => string,
    private readonly maxBytes: number,
  ) {}

  /**
   * A value pushed to this worker by the peer connection `from`, or why it was dropped. A value
   * that would take the held values past their bounds is an overflow: the caller closes the
   * connection that sent it and calls `forget`, so a flooding peer loses what it sent and the
   * others keep their room.
   */
  deliver(run: number, key: string, tensor: WireTensor, from: object): Delivery {
    if (this.ended.has(run))
      return { dropped: `a value for run ${run}, which has ended, was dropped`, overflow: false };
    const at = slot(run, key);
    const waiter = this.waiting.get(at);
    if (waiter) {
      this.waiting.delete(at);
      waiter.resolve(tensor);
      return { dropped: null };
    }
    if (this.arrived.has(at))
      return { dropped: `value ${key} of run ${run} arrived twice; the second was dropped`, overflow: false };
    if (this.arrived.size >= MAX_HELD_VALUES)
      return { dropped: `${MAX_HELD_VALUES} values pushed here are not yet read`, overflow: true };
    if (this.bytes + tensor.bytes.byteLength > this.maxBytes)
      return {
        dropped: `values pushed here and not yet read would exceed ${this.maxBytes} bytes`,
        overflow: true,
      };
    this.arrived.set(at, { tensor, from });
    this.bytes += tensor.bytes.byteLength;
    return { dropped: null };
  }

  /** Drops what the peer connection `from` pushed and nobody has read yet. */
  forget(from: object): number {
    let n = 0;
    for (const [at, held] of this.arrived) {
      if (held.from !== from) continue;
      this.arrived.delete(at);
      this.bytes -= held.tensor.bytes.byteLength;
      n++;
    }
    return n;
  }

  /** The value pushed under (run, key), once it is here. */
  take(run: number, key: string): Promise<WireTensor> {
    const at = slot(run, key);
    const here = this.arrived.get(at);
    if (here) {
      this.arrived.delete(at);
      this.bytes -= here.tensor.bytes.byteLength;
      return Promise.resolve(here.tensor);
    }
    if (this.ended.has(run))
      return Promise.reject(new KilnError('cancelled', `run ${run} has ended on worker '${this.worker()}'`));
    return new Promise((resolve, reject) => this.waiting.set(at, { resolve, reject }));
  }

  /** The runs ended: what they left is dropped, and what still waits for them fails. */
  end(runs: readonly number[]): void {
    for (const run of runs) {
      this.ended.add(run);
      if (this.ended.size > ENDED_RUNS) this.ended.delete(this.ended.values().next().value as number);
      const prefix = `${run}/`;
      for (const [at, held] of this.arrived) {
        if (!at.startsWith(prefix)) continue;
        this.arrived.delete(at);
        this.bytes -= held.tensor.bytes.byteLength;
      }
      for (const [at, waiter] of this.waiting) {
        if (!at.startsWith(prefix)) continue;
        this.waiting.delete(at);
        waiter.reject(
          new KilnError(
            'cancelled',
            `run ${run} ended on worker '${this.worker()}' while a partition waited for ${at.slice(prefix.length)}`,
          ),
        );
      }
    }
  }
}
