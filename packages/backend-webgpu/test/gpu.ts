import { createWebGpuDevice, type WebGpuDevice } from '@kiln/backend-webgpu';
import { nodeGpu, nodeGpuError } from '@kiln/backend-webgpu/node';

/**
 * The adapter the suite runs on, probed once. Without one (no GPU, no Vulkan driver such as Mesa's
 * lavapipe: see .ci/install-webgpu-deps.sh) the suite says so in one line and skips the GPU tests.
 */
const gpu = nodeGpu();
let reason = gpu ? '' : `Dawn did not load: ${nodeGpuError()}`;
const probe = gpu ? await createWebGpuDevice(gpu, { onUnavailable: (r) => (reason = r) }) : null;
export const adapterInfo = probe?.adapterInfo ?? '';
probe?.dispose();

/** Why there is no adapter (the GPU tests are then skipped), or null. conformance.test.ts says it once. */
export const noAdapter: string | null = probe ? null : reason;

/** A fresh device on the suite's adapter. */
export async function newDevice(name?: string): Promise<WebGpuDevice> {
  const device = await createWebGpuDevice(gpu, name ? { name } : {});
  if (!device) throw new Error('the WebGPU adapter went away');
  return device;
}

/** The GPU object the suite probed (Dawn's), for tests that make devices their own way. */
export const suiteGpu = () => gpu;
