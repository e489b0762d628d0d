import { checkDevice, type DevicePlugin, KERNEL_ABI_VERSION, KilnError } from '@kiln/ir';
import { WebGpuDevice, type WebGpuDeviceOptions } from './device.js';

/** The outcome of asking for a device: the device, or why there is none. */
export type WebGpuRequest =
  | { readonly device: WebGpuDevice }
  | { readonly device: null; readonly reason: string };

/**
 * Asks `gpu` (navigator.gpu in a browser, nodeGpu() in Node) for an adapter and a device with the
 * adapter's own storage limits. Never throws for a missing adapter: says why instead.
 */
export async function requestWebGpuDevice(
  gpu: GPU | null | undefined,
  options: WebGpuDeviceOptions = {},
): Promise<WebGpuRequest> {
  if (!gpu) return { device: null, reason: 'WebGPU is not available here (no GPU object)' };
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(options.adapter);
  } catch (e) {
    return { device: null, reason: `requestAdapter failed: ${String(e)}` };
  }
  if (!adapter)
    return { device: null, reason: 'no WebGPU adapter was found (no GPU, or no driver such as Vulkan)' };
  const l = adapter.limits;
  try {
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
    const info = adapter.info;
    const describe = [info?.vendor, info?.architecture, info?.device, info?.description]
      .filter(Boolean)
      .join(' ');
    return { device: new WebGpuDevice(device, describe || 'unknown adapter', options, { gpu, adapter }) };
  } catch (e) {
    return { device: null, reason: `requestDevice failed: ${String(e)}` };
  }
}

/**
 * The device for `gpu`, or null when there is no adapter; `options.onUnavailable` hears why.
 *
 *   const device = await createWebGpuDevice(navigator.gpu);
 */
export async function createWebGpuDevice(
  gpu: GPU | null | undefined,
  options: WebGpuDeviceOptions & { readonly onUnavailable?: (reason: string) => void } = {},
): Promise<WebGpuDevice | null> {
  const r = await requestWebGpuDevice(gpu, options);
  if (r.device === null) options.onUnavailable?.(r.reason);
  return r.device;
}

export interface WebGpuPluginOptions extends WebGpuDeviceOptions {
  /** The GPU object (null: none); left out, navigator.gpu where it exists. In Node pass nodeGpu(). */
  readonly gpu?: GPU | null;
}

/** The plugin object: what `registerPlugin` takes. Creating fails with a KilnError without an adapter. */
export const webgpuPlugin = {
  abi: KERNEL_ABI_VERSION,
  kind: 'webgpu',
  create: async (options: WebGpuPluginOptions = {}) => {
    const gpu =
      options.gpu !== undefined
        ? options.gpu
        : ((globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu ?? null);
    const r = await requestWebGpuDevice(gpu, options);
    if (r.device === null) throw new KilnError('unsupported', `webgpu: ${r.reason}`);
    checkDevice(r.device);
    return r.device;
  },
} satisfies DevicePlugin<WebGpuPluginOptions>;
