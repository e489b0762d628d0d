import { createWebGpuDevice } from '@kiln/backend-webgpu';
import { CpuDevice, type Device, wasmSimdAvailable } from 'kiln-tensor';
import type { AdapterSummary, PageResult } from '../page-result.js';

export interface DeviceChoice {
  readonly device: Device;
  readonly kind: PageResult['device'];
  readonly cpuKernels?: PageResult['cpuKernels'];
  /** Whether a CPU device (this one, or one the page falls back to) may use WebAssembly SIMD. */
  readonly simd: boolean;
  readonly gpu: PageResult['gpu'];
  readonly adapter?: AdapterSummary;
  readonly fallbackReason?: string;
}

/**
 * WebGPU where the browser has it and returns an adapter, the CPU otherwise. The page asks for
 * the adapter itself too, only to say which one it got. `typescriptKernels` keeps a CPU device's
 * kernels all in TypeScript (to compare with the WebAssembly SIMD ones).
 */
export async function pickDevice(typescriptKernels = false): Promise<DeviceChoice> {
  const simd = !typescriptKernels;
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return cpuChoice(simd, 'absent');
  const adapter = await gpu.requestAdapter();
  if (!adapter) return cpuChoice(simd, 'no-adapter');
  const summary = summarize(adapter);
  let unavailable = '';
  const device = await createWebGpuDevice(gpu, {
    name: 'webgpu:0',
    onUnavailable: (reason) => {
      unavailable = reason;
    },
  });
  if (!device) return cpuChoice(simd, 'adapter', summary, `backend-webgpu made no device: ${unavailable}`);
  return { device, kind: 'webgpu', gpu: 'adapter', adapter: summary, simd };
}

/** The CPU, after `choice` (a WebGPU one) failed with `error`: visibly, with the reason. */
export function fallBackToCpu(choice: DeviceChoice, error: unknown): DeviceChoice {
  const message = error instanceof Error ? error.message : String(error);
  return cpuChoice(choice.simd, choice.gpu, choice.adapter, `${choice.device.name} failed: ${message}`);
}

function cpuChoice(
  simd: boolean,
  gpu: PageResult['gpu'],
  adapter?: AdapterSummary,
  fallbackReason?: string,
): DeviceChoice {
  return {
    simd,
    device: new CpuDevice({ name: 'cpu:0', simd }),
    kind: 'cpu',
    cpuKernels: simd && wasmSimdAvailable() ? 'webassembly-simd' : 'typescript',
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
