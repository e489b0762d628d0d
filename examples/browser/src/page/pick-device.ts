import { createWebGpuDevice } from '@kiln/backend-webgpu';
import { CpuDevice, type Device } from 'kiln-tensor';
import type { AdapterSummary, PageResult } from '../page-result.js';

export interface DeviceChoice {
  readonly device: Device;
  readonly kind: PageResult['device'];
  readonly gpu: PageResult['gpu'];
  readonly adapter?: AdapterSummary;
  readonly fallbackReason?: string;
}

/**
 * WebGPU where the browser has it and returns an adapter, the CPU otherwise. The page asks for
 * the adapter itself too, only to say which one it got.
 */
export async function pickDevice(): Promise<DeviceChoice> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return cpuChoice('absent');
  const adapter = await gpu.requestAdapter();
  if (!adapter) return cpuChoice('no-adapter');
  const summary = summarize(adapter);
  let unavailable = '';
  const device = await createWebGpuDevice(gpu, {
    name: 'webgpu:0',
    onUnavailable: (reason) => {
      unavailable = reason;
    },
  });
  if (!device) return cpuChoice('adapter', summary, `backend-webgpu made no device: ${unavailable}`);
  return { device, kind: 'webgpu', gpu: 'adapter', adapter: summary };
}

/** The CPU, after `choice` (a WebGPU one) failed with `error`: visibly, with the reason. */
export function fallBackToCpu(choice: DeviceChoice, error: unknown): DeviceChoice {
  const message = error instanceof Error ? error.message : String(error);
  return cpuChoice(choice.gpu, choice.adapter, `${choice.device.name} failed: ${message}`);
}

function cpuChoice(gpu: PageResult['gpu'], adapter?: AdapterSummary, fallbackReason?: string): DeviceChoice {
  return {
    device: new CpuDevice({ name: 'cpu:0' }),
    kind: 'cpu',
    gpu,
    ...(adapter ? { adapter } : {}),
    ...(fallbackReason ? { fallbackReason } : {}),
  };
}

function summarize(adapter: GPUAdapter): AdapterSummary {
  // `info` is recent (Chromium 127+); older browsers only have requestAdapterInfo().
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? '',
  };
}
