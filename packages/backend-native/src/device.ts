import { type DevicePlugin, HostDevice, KERNEL_ABI_VERSION, KilnError } from '@kiln/ir';
import { addon, unavailableReason } from './addon.js';
import { nativeKernels } from './kernels.js';
import { declineFused } from './program.js';

export interface NativeDeviceOptions {
  /** Default 'native:0'. */
  readonly name?: string;
  /**
   * Threads for OpenBLAS and oneDNN (default: their own choice, the machine's cores). Give each of
   * N devices in one process about cores / N, so they do not oversubscribe the cores.
   */
  readonly threads?: number;
  /**
   * Let long kernels (a large product, convolution or program) run on a thread of libuv's pool
   * in an asynchronous run, so this thread stays free meanwhile. Default true; synchronous runs
   * (eager ops) always compute on the calling thread.
   */
  readonly offThread?: boolean;
}

/**
 * The native device: host memory (typed arrays the addon reads and writes in place, no copies),
 * kernels in C++ where they exist (OpenBLAS sgemm for matmul; elementwise ops, fusion groups and
 * reductions as vectorized native loops) and the reference kernels elsewhere. Creating it where the addon is unavailable is a KilnError
 * saying why, in one line.
 */
export class NativeDevice extends HostDevice {
  constructor(options: NativeDeviceOptions = {}) {
    if (!addon) throw new KilnError('unsupported', unavailableReason!);
    if (options.threads !== undefined) addon.setThreads(options.threads);
    super({
      name: options.name ?? 'native:0',
      kind: 'native',
      kernels: nativeKernels(addon, { threads: options.threads ?? 0, offThread: options.offThread ?? true }),
      // OpenBLAS's GEMM is tens of GFLOP/s on one core; the placer needs ratios, not truth.
      info: { flopsPerSecond: 3e10, bytesPerSecond: 8e9 },
      recycle: true,
      declines: (node) =>
        node.op === 'fused'
          ? declineFused(
              node.attrs,
              node.inputs.map((t) => t.dtype),
            )
          : undefined,
    });
  }
}

/** The plugin object: `devices.register(nativePlugin)`, or `--device @kiln/backend-native`. */
export const nativePlugin: DevicePlugin<NativeDeviceOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'native',
  create: (options) => new NativeDevice(options),
};
