export { addon, type NativeAddon, unavailableReason } from './addon.js';
export { NativeDevice, type NativeDeviceOptions, nativePlugin, nativePlugin as plugin } from './device.js';
export { nativeKernels } from './kernels.js';
