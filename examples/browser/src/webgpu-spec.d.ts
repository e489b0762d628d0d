/**
 * The WebGPU spec lets GPUQueue.writeBuffer take any ArrayBufferView (`AllowSharedBufferSource`).
 * @webgpu/types spells that as `BufferSource | SharedArrayBuffer`, which TypeScript's DOM library
 * narrows to views of a plain ArrayBuffer, so under `lib: DOM` (this page) backend-webgpu's
 * sources, typed against Node's wider BufferSource, would not typecheck. This overload restores
 * the spec's signature.
 */
export {};

declare global {
  interface GPUQueue {
    writeBuffer(
      buffer: GPUBuffer,
      bufferOffset: number,
      data: AllowSharedBufferSource,
      dataOffset?: number,
      size?: number,
    ): undefined;
  }
}
