import { type BufferView, type DeviceBuffer, DTYPE_INFO, KilnError, sizeOf } from '@kiln/ir';

/** A kiln buffer on a WebGPU device: a pooled GPUBuffer at least `byteLength` bytes long. */
export class WebGpuBuffer implements DeviceBuffer {
  freed = false;
  /** Set once the device has said it could not make the buffer (out of memory, say). */
  failure: KilnError | null = null;
  constructor(
    readonly device: string,
    readonly byteLength: number,
    readonly gpu: GPUBuffer,
    /**
     * Resolves when the device has answered the allocation: WebGPU reports out-of-memory
     * asynchronously, so allocate() returns at once and reads, writes and runs check this.
     */
    readonly ready: Promise<void>,
  ) {}
}

/** Checks that `buffer` is a live buffer of `device` and that [offset, offset + length) lies in it. */
export function checkRange(
  device: string,
  buffer: DeviceBuffer,
  byteOffset: number,
  byteLength: number,
  what: string,
): WebGpuBuffer {
  if (!(buffer instanceof WebGpuBuffer) || buffer.device !== device) {
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

/** Checks a bound view: live buffer of this device, in range, aligned to its dtype. */
export function checkView(device: string, view: BufferView, what: string): WebGpuBuffer {
  const info = DTYPE_INFO[view.dtype];
  const buffer = checkRange(device, view.buffer, view.byteOffset, sizeOf(view.shape) * info.bytes, what);
  if (view.byteOffset % info.bytes !== 0) {
    throw new KilnError(
      'invalid-argument',
      `${what}: offset ${view.byteOffset} is not aligned to ${view.dtype}`,
    );
  }
  return buffer;
}

/** Waits for the device's answer to a buffer's allocation; rethrows its failure. */
export async function usable(b: WebGpuBuffer): Promise<void> {
  await b.ready;
  if (b.failure) throw b.failure;
}
