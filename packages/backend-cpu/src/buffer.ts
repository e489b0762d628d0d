import { type BufferView, type DeviceBuffer, DTYPE_INFO, type HostArray, KilnError, sizeOf } from '@kiln/ir';

/** CPU memory: an ArrayBuffer, or a SharedArrayBuffer so worker threads can share it. */
export class CpuBuffer implements DeviceBuffer {
  freed = false;
  readonly bytes: ArrayBuffer | SharedArrayBuffer;
  constructor(
    readonly device: string,
    readonly byteLength: number,
    shared: boolean,
  ) {
    try {
      this.bytes = shared ? new SharedArrayBuffer(byteLength) : new ArrayBuffer(byteLength);
    } catch (e) {
      throw new KilnError('runtime', `${device}: cannot allocate ${byteLength} bytes`, { cause: e });
    }
  }
}

/** Checks that `buffer` is a live buffer of `device` and that [offset, offset + length) lies in it. */
export function checkRange(
  device: string,
  buffer: DeviceBuffer,
  byteOffset: number,
  byteLength: number,
  what: string,
): CpuBuffer {
  if (!(buffer instanceof CpuBuffer) || buffer.device !== device) {
    throw new KilnError('invalid-argument', `${what}: the buffer does not belong to device ${device}`);
  }
  if (buffer.freed) throw new KilnError('invalid-argument', `${what}: the buffer was freed`);
  if (
    !Number.isInteger(byteOffset) ||
    !Number.isInteger(byteLength) ||
    byteOffset < 0 ||
    byteLength < 0 ||
    byteOffset + byteLength > buffer.byteLength
  ) {
    throw new KilnError(
      'invalid-argument',
      `${what}: bytes [${byteOffset}, ${byteOffset + byteLength}) are outside the ${buffer.byteLength}-byte buffer`,
    );
  }
  return buffer;
}

/** A typed array over a view's bytes (no copy). */
export function viewArray(device: string, view: BufferView, what: string): HostArray {
  const info = DTYPE_INFO[view.dtype];
  const length = sizeOf(view.shape);
  const buffer = checkRange(device, view.buffer, view.byteOffset, length * info.bytes, what);
  if (view.byteOffset % info.bytes !== 0) {
    throw new KilnError(
      'invalid-argument',
      `${what}: offset ${view.byteOffset} is not aligned to ${view.dtype}`,
    );
  }
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
