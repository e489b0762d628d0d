import {
  type BufferView,
  checkBufferRange,
  checkViewRange,
  type DeviceBuffer,
  type KilnError,
} from '@kiln/ir';

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

const isWebGpuBuffer = (b: DeviceBuffer): b is WebGpuBuffer => b instanceof WebGpuBuffer;

/** Checks that `buffer` is a live buffer of `device` and that [offset, offset + length) lies in it. */
export function checkRange(
  device: string,
  buffer: DeviceBuffer,
  byteOffset: number,
  byteLength: number,
  what: string,
): WebGpuBuffer {
  return checkBufferRange(device, buffer, isWebGpuBuffer, byteOffset, byteLength, what);
}

/** Checks a bound view: live buffer of this device, in range, aligned to its dtype. */
export function checkView(device: string, view: BufferView, what: string): WebGpuBuffer {
  return checkViewRange(device, view, isWebGpuBuffer, what);
}

/** Waits for the device's answer to a buffer's allocation; rethrows its failure. */
export async function usable(b: WebGpuBuffer): Promise<void> {
  await b.ready;
  if (b.failure) throw b.failure;
}
