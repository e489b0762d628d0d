/**
 * What a worker's device thread is running, kept in shared memory that its process's main thread
 * reads without asking. The device thread cannot answer anything while a kernel is stuck; the
 * main thread, watching the board, can still see that no node has started for a while, and in
 * which node and partition the run stopped.
 *
 * Layout (Int32): [0] ticks (bumped at every change), [1] running (0 or 1), [2] the node running,
 * [3] the partition key's length in bytes; the key's UTF-8 from byte 16.
 */
const HEADER = 16;
const KEY_BYTES = 240;

export interface Progress {
  readonly ticks: number;
  readonly running: boolean;
  readonly node: number;
  readonly partition: string;
}

export class ProgressBoard {
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(HEADER + KEY_BYTES)) {
    this.words = new Int32Array(buffer, 0, 4);
    this.bytes = new Uint8Array(buffer, HEADER, KEY_BYTES);
  }

  /** The device thread starts running a partition. */
  started(partition: string): void {
    const { written } = new TextEncoder().encodeInto(partition, this.bytes);
    Atomics.store(this.words, 3, written);
    Atomics.store(this.words, 2, -1);
    Atomics.store(this.words, 1, 1);
    Atomics.add(this.words, 0, 1);
  }

  /** A node starts: progress. Once per node, so it is two atomic stores and nothing more. */
  node(id: number): void {
    Atomics.store(this.words, 2, id);
    Atomics.add(this.words, 0, 1);
  }

  finished(): void {
    Atomics.store(this.words, 1, 0);
    Atomics.add(this.words, 0, 1);
  }

  read(): Progress {
    const length = Math.min(Atomics.load(this.words, 3), KEY_BYTES);
    return {
      ticks: Atomics.load(this.words, 0),
      running: Atomics.load(this.words, 1) === 1,
      node: Atomics.load(this.words, 2),
      // Copied out of shared memory first: TextDecoder does not read a shared buffer.
      partition: new TextDecoder().decode(this.bytes.slice(0, length)),
    };
  }
}
