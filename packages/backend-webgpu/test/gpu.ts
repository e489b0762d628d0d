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

/**
 * Per-test limits. What takes time here is compiling shaders: lavapipe compiles each new pipeline
 * with LLVM (the tiled matmul's takes 5 to 10 s), and Mesa's disk cache makes later runs cheap. So
 * the limits come from runs with a cold cache on 2 cores shared with two CPU-bound processes
 * (load average about 5): matmul's kit 51 s, the slowest other op 10 s, the slowest device test
 * 15 s; each limit is four to six times that.
 */
export const LIMITS = {
  /** Added to a watchdog's limit for vitest's own, which then only fires if the watchdog could not. */
  backstop: 10_000,
  /** One op of the conformance kit. */
  conformanceOp: (op: string): number => (op === 'matmul' ? 240_000 : 60_000),
  /** A device test that compiles a handful of kernels. */
  deviceTest: 60_000,
};

/** The GPU object the suite probed (Dawn's), for tests that make devices their own way. */
export const suiteGpu = () => gpu;

/**
 * Runs `work`, failing after `ms` with what `device` was still waiting for (reads, runs, compiles
 * in flight), so that a hang names its work; vitest's own limit, set a little above, only says
 * which test. Slow is not hung: `ms` leaves room for a loaded machine compiling shaders cold.
 */
export async function within<T>(
  ms: number,
  what: string,
  device: WebGpuDevice,
  work: () => Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const waiting = device.pendingWork;
      reject(
        new Error(
          `${what} did not finish in ${ms / 1000} s; ${device.name} was waiting for ${waiting.length > 0 ? waiting.join('; ') : 'nothing (the time went to JavaScript or shader creation)'}`,
        ),
      );
    }, ms);
  });
  try {
    return await Promise.race([work(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
