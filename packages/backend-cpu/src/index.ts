export { CpuBuffer } from './buffer.js';
export { type CpuDeviceOptions, CpuDevice, cpuPlugin } from './device.js';
export { CpuExecutable } from './executable.js';
export { KERNELS } from './kernels/index.js';
