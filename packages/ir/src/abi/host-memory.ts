import { DTYPE_INFO, type HostArray } from '../dtype.js';
import { KilnError } from '../errors.js';
import { sizeOf } from '../shape.js';
import { checkBufferRange, checkViewRange } from './check.js';
import type { BufferView, DeviceBuffer } from './device.js';

/** Host memory: an ArrayBuffer, or a SharedArrayBuffer so worker threads can map the same bytes. */
export class HostBuffer implements DeviceBuffer {
  freed = false;
  readonly bytes: ArrayBuffer | SharedArrayBuffer;
  constructor(
    readonly device: string,
    readonly byteLength: number,
    shared: boolean,
    /** Memory to reuse (zeroed, of exactly `byteLength` bytes) instead of allocating. */
    reuse?: ArrayBuffer,
  ) {
    try {
      this.bytes = reuse ?? (shared ? new SharedArrayBuffer(byteLength) : new ArrayBuffer(byteLength));
    } catch (e) {
      throw new KilnError('runtime', `${device}: cannot allocate ${byteLength} bytes`, { cause: e });
    }
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
  const buffer = checkViewRange(device, view, isHostBuffer, what);
  return DTYPE_INFO[view.dtype].view(buffer.bytes, view.byteOffset, sizeOf(view.shape));
}
