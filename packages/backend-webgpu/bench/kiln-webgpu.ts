import type { Device } from '@kiln/ir';
import { createWebGpuDevice } from '../src/index.js';

/** kiln's WebGPU device on `gpu`, or why there is none. */
export async function kilnWebGpuDevice(gpu: GPU): Promise<Device | { reason: string }> {
  let reason = 'createWebGpuDevice returned no device';
  const device = await createWebGpuDevice(gpu, {
    name: 'webgpu:0',
    onUnavailable: (why) => {
      reason = why;
    },
  });
  return device ?? { reason };
}
