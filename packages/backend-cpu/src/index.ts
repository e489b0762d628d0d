export { CpuDevice, type CpuDeviceOptions, cpuPlugin, cpuPlugin as plugin } from './device.js';
export { hasExpression } from './kernels/elementwise.js';
export { KERNELS, simdKernels } from './kernels/index.js';
export { wasmSimdAvailable } from './wasm/gemm-wasm.js';
