import { KilnError } from '@kiln/ir';
import type { WireTensor } from './protocol.js';

const slot = (run: number, key: string) => `${run}/${key}`;

/** Runs remembered as ended, so a value that arrives for one late is dropped, not kept forever. */
const ENDED_RUNS = 4096;

/**
 * The rendezvous of the data plane on one worker: values other workers pushed here, by (run, key),
 * and the partitions waiting for them. A value may arrive before or after the partition that reads
 * it is dispatched (the two travel different paths: peer to peer, and through the coordinator),
 * so whichever comes second completes the pair. A run that ends (committed, released) drops what
 * it left here and fails what still waits. What arrives is bounded in bytes: a peer cannot grow
 * this worker's memory past its limit by pushing values no partition reads.
 */
export class PeerInbox {
  private readonly arrived = new Map<string, WireTensor>();
  private readonly waiting = new Map<string, { resolve(t: WireTensor): void; reject(e: KilnError): void }>();
  private readonly ended = new Set<number>();
  private bytes = 0;

  constructor(
    private readonly worker: () => string,
    private readonly maxBytes: number,
  ) {}

  /** A value pushed to this worker; dropped (with the reason returned) if it cannot be taken. */
  deliver(run: number, key: string, tensor: WireTensor): string | null {
    if (this.ended.has(run)) return `a value for run ${run}, which has ended, was dropped`;
    const at = slot(run, key);
    const waiter = this.waiting.get(at);
    if (waiter) {
      this.waiting.delete(at);
      waiter.resolve(tensor);
      return null;
    }
    if (this.arrived.has(at)) return `value ${key} of run ${run} arrived twice; the second was dropped`;
    if (this.bytes + tensor.bytes.byteLength > this.maxBytes)
      return `value ${key} of run ${run} was dropped: values pushed here and not yet read would exceed ${this.maxBytes} bytes`;
    this.arrived.set(at, tensor);
    this.bytes += tensor.bytes.byteLength;
    return null;
  }

  /** The value pushed under (run, key), once it is here. */
  take(run: number, key: string): Promise<WireTensor> {
    const at = slot(run, key);
    const here = this.arrived.get(at);
    if (here) {
      this.arrived.delete(at);
      this.bytes -= here.bytes.byteLength;
      return Promise.resolve(here);
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
      for (const [at, tensor] of this.arrived) {
        if (!at.startsWith(prefix)) continue;
        this.arrived.delete(at);
        this.bytes -= tensor.bytes.byteLength;
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
