import { globals } from 'webgpu';
import { nodeGpu, nodeGpuError } from '../src/node.js';

export interface BenchGpu {
  readonly gpu: GPU;
  /** The adapter Dawn picked, in words (vendor, architecture, description). */
  readonly adapter: string;
}

/**
 * One Dawn GPU object for the whole run, so kiln and TensorFlow.js get the same adapter (lavapipe
 * on machines without a GPU). Also installs what tfjs-backend-webgpu expects of a browser: the
 * WebGPU constants (GPUBufferUsage, ...) as globals and `navigator.gpu`. Says why when there is
 * no adapter.
 */
export async function benchGpu(): Promise<BenchGpu | { reason: string }> {
  const gpu = nodeGpu();
  if (!gpu) return { reason: `Dawn did not load: ${nodeGpuError()}` };
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { reason: 'Dawn found no WebGPU adapter (no GPU, and no lavapipe?)' };
  Object.assign(globalThis, globals);
  const g = globalThis as { navigator?: { gpu?: GPU } };
  // Node 20 has no navigator; later versions have one without gpu.
  if (!g.navigator) g.navigator = { gpu };
  else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  const info = adapter.info;
  const words = [info.vendor, info.architecture, info.description].filter((w) => w).join(', ');
  return { gpu, adapter: words || 'unnamed adapter' };
}
