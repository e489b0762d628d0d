import { CpuDevice, type Device } from 'kiln';
import type { AdapterSummary, PageResult } from '../page-result.js';

export interface DeviceChoice {
  readonly device: Device;
  readonly kind: PageResult['device'];
  readonly gpu: PageResult['gpu'];
  readonly adapter?: AdapterSummary;
  readonly fallbackReason?: string;
}

/**
 * WebGPU where the browser has it and returns an adapter, the CPU otherwise. The adapter is asked
 * for here as well as by the backend so the page can say which one it got.
 */
export async function pickDevice(): Promise<DeviceChoice> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return cpu('absent');
  const adapter = await gpu.requestAdapter();
  if (!adapter) return cpu('no-adapter');
  const summary = summarize(adapter);
  // backend-webgpu is being written; until its device exists the page runs on the CPU and says so.
  return cpu('adapter', summary, '@kiln/backend-webgpu has no device yet');
}

function cpu(gpu: PageResult['gpu'], adapter?: AdapterSummary, fallbackReason?: string): DeviceChoice {
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
