import { KilnError } from '../errors.js';
import { type Device, type DevicePlugin, KERNEL_ABI_VERSION } from './device.js';

const DEVICE_METHODS = ['allocate', 'free', 'write', 'read', 'supports', 'compile', 'dispose'] as const;

/** Checks a plugin before it is registered: the ABI version it was built for, and its shape. */
export function checkPlugin(plugin: unknown): asserts plugin is DevicePlugin {
  const p = plugin as Partial<DevicePlugin> | null;
  if (typeof p !== 'object' || p === null || typeof p.create !== 'function' || typeof p.kind !== 'string') {
    throw new KilnError('abi', 'not a kiln device plugin: expected { abi, kind, create(options) }');
  }
  checkVersion(`plugin '${p.kind}'`, p.abi);
}

/** Checks a device instance: version, name and every method of the ABI. */
export function checkDevice(device: unknown): asserts device is Device {
  const d = device as Partial<Device> | null;
  if (typeof d !== 'object' || d === null) throw new KilnError('abi', 'not a kiln device');
  const name = typeof d.name === 'string' ? d.name : '(unnamed)';
  checkVersion(`device '${name}'`, d.abi);
  if (typeof d.name !== 'string' || typeof d.kind !== 'string')
    throw new KilnError('abi', `device '${name}' lacks a name or kind`);
  const missing = DEVICE_METHODS.filter((m) => typeof d[m] !== 'function');
  if (missing.length > 0)
    throw new KilnError('abi', `device '${name}' does not implement ${missing.join(', ')}`);
}

function checkVersion(what: string, abi: unknown): void {
  if (abi !== KERNEL_ABI_VERSION) {
    throw new KilnError(
      'abi',
      `${what} implements kernel ABI ${String(abi)}, but this kiln speaks ABI ${KERNEL_ABI_VERSION}; rebuild the plugin against @kiln/ir of this version`,
    );
  }
}
