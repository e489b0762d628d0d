import { DTYPE_INFO, type DType, type HostArray } from '../dtype.js';
import { sizeOf } from '../shape.js';
import { checkBufferRange, checkViewRange } from './check.js';
import type { BufferView, DeviceBuffer } from './device.js';

/**
 * Where a host buffer's or an arena's bytes live: an ArrayBuffer, or a SharedArrayBuffer so worker
 * threads can map the same bytes, and the offset in it of the first byte (0, or past a few bytes
 * of slack where the device wants its memory aligned: see HostDeviceOptions.alignedStart).
 */
export interface HostMemory {
  readonly bytes: ArrayBuffer | SharedArrayBuffer;
  readonly start: number;
}

/** Host memory of one buffer. */
export class HostBuffer implements DeviceBuffer {
  freed = false;
  readonly bytes: ArrayBuffer | SharedArrayBuffer;
  /** Where the buffer's first byte lies in `bytes`. */
  readonly start: number;
  /**
   * The typed array hostArray made last for this buffer, and its dtype: a buffer is bound the same
   * way run after run (an eager tensor's, a plan's), and a typed array costs an allocation.
   */
  lastArray: HostArray | undefined;
  lastDType: DType | undefined;

  /** Takes `array` (over all of this buffer's memory, reused from a freed buffer) as its last. */
  bindLast(array: HostArray | undefined): void {
    if (array === undefined || array.buffer !== this.bytes || array.byteOffset !== this.start) return;
    this.lastArray = array;
    this.lastDType =
      array instanceof Float32Array ? 'float32' : array instanceof Int32Array ? 'int32' : 'bool';
  }
  constructor(
    readonly device: string,
    readonly byteLength: number,
    memory: HostMemory,
  ) {
    this.bytes = memory.bytes;
    this.start = memory.start;
  }
}

const isHostBuffer = (b: DeviceBuffer): b is HostBuffer => b instanceof HostBuffer;

/** Checks that `buffer` is a live host buffer of `device` and that [offset, offset + length) lies in it. */
export function checkHostRange(
  device: string,
  buffer: DeviceBuffer,
  byteOffset: number,
  byteLength: number,
  what: string,
): HostBuffer {
  return checkBufferRange(device, buffer, isHostBuffer, byteOffset, byteLength, what);
}

/** A typed array over a bound view's bytes (no copy), after checking the view. */
export function hostArray(device: string, view: BufferView, what: string): HostArray {
  const length = sizeOf(view.shape);
  const candidate = view.buffer;
  if (isHostBuffer(candidate) && candidate.device === device && !candidate.freed) {
    const last = candidate.lastArray;
    // The same bytes as the last time, whose range was checked then (a detached buffer's arrays
    // have length 0, and never match).
    if (
      last !== undefined &&
      candidate.lastDType === view.dtype &&
      last.byteOffset === candidate.start + view.byteOffset &&
      last.length === length
    )
      return last;
  }
  const buffer = checkViewRange(device, view, isHostBuffer, what);
  const array = DTYPE_INFO[view.dtype].view(buffer.bytes, buffer.start + view.byteOffset, length);
  buffer.lastArray = array;
  buffer.lastDType = view.dtype;
  return array;
}
