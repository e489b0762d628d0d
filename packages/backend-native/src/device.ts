import { type DevicePlugin, HostDevice, KERNEL_ABI_VERSION, KilnError } from '@kiln/ir';
import { addon, unavailableReason } from './addon.js';
import { declineFusedMatmul } from './fused-matmul.js';
import { Groups, type GroupsState } from './groups.js';
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
   * Let long kernels (a large product, convolution or program) run on a native kernel thread
   * in an asynchronous run, so this thread stays free meanwhile. Default true; synchronous runs
   * (eager ops) always compute on the calling thread.
   */
  readonly offThread?: boolean;
  /**
   * Give large fusion groups loops of their own, compiled on this machine by its C compiler in the
   * background (codegen.ts). Default true, unless the environment sets KILN_NATIVE_CODEGEN=0;
   * false keeps every group in the interpreter.
   */
  readonly codegen?: boolean;
}

/**
 * The native device: host memory (typed arrays the addon reads and writes in place, no copies),
 * kernels in C++ where they exist (kernels.ts: oneDNN and OpenBLAS for products and convolutions;
 * elementwise ops, fusion groups, reductions and softmax as vectorized native loops) and the
 * reference kernels elsewhere. Creating it where the addon is unavailable is a KilnError saying
 * why, in one line.
 */
export class NativeDevice extends HostDevice {
  readonly #groups: Groups | undefined;

  constructor(options: NativeDeviceOptions = {}) {
    if (!addon) throw new KilnError('unsupported', unavailableReason!);
    const native = addon;
    if (options.threads !== undefined) addon.setThreads(options.threads);
    const groups =
      (options.codegen ?? process.env.KILN_NATIVE_CODEGEN !== '0') ? new Groups(addon) : undefined;
    super({
      name: options.name ?? 'native:0',
      kind: 'native',
      kernels: nativeKernels(
        addon,
        { threads: options.threads ?? 0, offThread: options.offThread ?? true },
        groups,
      ),
      // OpenBLAS's GEMM is tens of GFLOP/s on one core; the placer needs ratios, not truth.
      info: { flopsPerSecond: 3e10, bytesPerSecond: 8e9 },
      recycle: true,
      // Buffers and arenas start on a cache line, where the vector loops' loads do not straddle two.
      alignedStart: (bytes) => native.alignedStart(bytes),
      declines: (node) => {
        const dtypes = node.inputs.map((t) => t.dtype);
        if (node.op === 'fused') return declineFused(node.attrs, dtypes);
        if (node.op === 'fusedMatmul') return declineFusedMatmul(node.attrs, dtypes, node.outputs[0]!.dtype);
        return undefined;
      },
    });
    this.#groups = groups;
  }

  /**
   * Settles once the generated loop of every fusion group compiled so far is in use, or has been
   * given up on (the group then stays in the interpreter). Runs never need to wait for it: it is
   * for benchmarks and tests that must measure or check the compiled loops.
   */
  async groupsSettled(): Promise<GroupsState> {
    return (await this.#groups?.settled()) ?? { attached: 0, stopped: 'codegen is off' };
  }
}

/** The plugin object: `devices.register(nativePlugin)`, or `--device @kiln/backend-native`. */
export const nativePlugin: DevicePlugin<NativeDeviceOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'native',
  create: (options) => new NativeDevice(options),
};
