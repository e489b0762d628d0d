import { DTYPE_INFO } from '../dtype.js';
import { KilnError } from '../errors.js';
import { sizeOf } from '../shape.js';
import {
  type BufferView,
  type Device,
  type DeviceBuffer,
  type DevicePlugin,
  KERNEL_ABI_VERSION,
} from './device.js';

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

/**
 * The error for `what` on a device its owner disposed, the same on every device: 'cancelled', since
 * ending the device is how its owner cancels whatever it still had to do.
 */
export function deviceDisposed(device: string, what: string): KilnError {
  return new KilnError('cancelled', `${device}: ${what}: the device was disposed`);
}

function checkVersion(what: string, abi: unknown): void {
  if (abi !== KERNEL_ABI_VERSION) {
    throw new KilnError(
      'abi',
      `${what} implements kernel ABI ${String(abi)}, but this kiln speaks ABI ${KERNEL_ABI_VERSION}; rebuild the plugin against @kiln/ir of this version`,
    );
  }
}

/**
 * What every device checks of a buffer it is handed: that it is its own (`own` tells its buffer
 * class apart) and live, and that bytes [byteOffset, byteOffset + byteLength) lie inside it.
 */
export function checkBufferRange<B extends DeviceBuffer & { readonly freed: boolean }>(
  device: string,
  buffer: DeviceBuffer,
  own: (b: DeviceBuffer) => b is B,
  byteOffset: number,
  byteLength: number,
  what: string,
): B {
  if (!own(buffer) || buffer.device !== device) {
    throw new KilnError('invalid-argument', `${what}: the buffer does not belong to device ${device}`);
  }
  if (buffer.freed) throw new KilnError('invalid-argument', `${what}: the buffer was freed`);
  if (
    !Number.isInteger(byteOffset) ||
    !Number.isInteger(byteLength) ||
    byteOffset < 0 ||
    byteLength < 0 ||
    byteOffset + byteLength > buffer.byteLength
  ) {
    throw new KilnError(
      'invalid-argument',
      `${what}: bytes [${byteOffset}, ${byteOffset + byteLength}) are outside the ${buffer.byteLength}-byte buffer`,
    );
  }
  return buffer;
}

/** checkBufferRange for a bound view, whose offset must also be aligned to its dtype. */
export function checkViewRange<B extends DeviceBuffer & { readonly freed: boolean }>(
  device: string,
  view: BufferView,
  own: (b: DeviceBuffer) => b is B,
  what: string,
): B {
  const bytes = DTYPE_INFO[view.dtype].bytes;
  const buffer = checkBufferRange(
    device,
    view.buffer,
    own,
    view.byteOffset,
    sizeOf(view.shape) * bytes,
    what,
  );
  if (view.byteOffset % bytes !== 0)
    throw new KilnError(
      'invalid-argument',
      `${what}: offset ${view.byteOffset} is not aligned to ${view.dtype}`,
    );
  return buffer;
}
