export { addon, type NativeAddon, unavailableReason } from './addon.js';
export { NativeDevice, type NativeDeviceOptions, nativePlugin, nativePlugin as plugin } from './device.js';
export type { GroupsState } from './groups.js';
export { nativeKernels } from './kernels.js';
