export { CpuDevice, type CpuDeviceOptions, cpuPlugin, cpuPlugin as plugin } from './device.js';
export { hasExpression } from './kernels/elementwise.js';
export { KERNELS } from './kernels/index.js';
