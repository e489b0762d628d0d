import {
  type BufferView,
  checkBufferRange,
  checkViewRange,
  type DeviceBuffer,
  type HostArray,
  KilnError,
  sizeOf,
} from '@kiln/ir';

/** CPU memory: an ArrayBuffer, or a SharedArrayBuffer so worker threads can share it. */
export class CpuBuffer implements DeviceBuffer {
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

const isCpuBuffer = (b: DeviceBuffer): b is CpuBuffer => b instanceof CpuBuffer;

/** Checks that `buffer` is a live buffer of `device` and that [offset, offset + length) lies in it. */
export function checkRange(
  device: string,
  buffer: DeviceBuffer,
  byteOffset: number,
  byteLength: number,
  what: string,
): CpuBuffer {
  return checkBufferRange(device, buffer, isCpuBuffer, byteOffset, byteLength, what);
}

/** A typed array over a view's bytes (no copy). */
export function viewArray(device: string, view: BufferView, what: string): HostArray {
  const length = sizeOf(view.shape);
  const buffer = checkViewRange(device, view, isCpuBuffer, what);
  switch (view.dtype) {
    case 'float32':
      return new Float32Array(buffer.bytes, view.byteOffset, length);
    case 'int32':
      return new Int32Array(buffer.bytes, view.byteOffset, length);
    case 'bool':
      return new Uint8Array(buffer.bytes, view.byteOffset, length);
    default:
      return view.dtype satisfies never;
  }
}
