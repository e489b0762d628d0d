export { WebGpuBuffer } from './buffer.js';
export type { GpuStats } from './context.js';
export {
  createWebGpuDevice,
  requestWebGpuDevice,
  type WebGpuPluginOptions,
  type WebGpuRequest,
  webgpuPlugin,
  webgpuPlugin as plugin,
} from './create.js';
export { WebGpuDevice, type WebGpuDeviceOptions } from './device.js';
export { WebGpuExecutable } from './executable.js';
export { KERNELS } from './kernels/index.js';
