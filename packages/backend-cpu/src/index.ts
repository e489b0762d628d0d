export { CpuDevice, type CpuDeviceOptions, cpuPlugin, cpuPlugin as plugin } from './device.js';
export { KERNELS } from './kernels/index.js';
