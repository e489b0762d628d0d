export { CpuBuffer } from './buffer.js';
export { CpuDevice, type CpuDeviceOptions, cpuPlugin, cpuPlugin as plugin } from './device.js';
export { CpuExecutable } from './executable.js';
export { KERNELS } from './kernels/index.js';
