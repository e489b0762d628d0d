import { type DevicePlugin, HostDevice, KERNEL_ABI_VERSION } from '@kiln/ir';
import { hasExpression } from './kernels/elementwise.js';
import { KERNELS, simdKernels } from './kernels/index.js';

export interface CpuDeviceOptions {
  /** Device name, such as 'cpu:0'. */
  readonly name?: string;
  /** Allocate SharedArrayBuffers, so other threads can map the same memory. */
  readonly shared?: boolean;
  /**
   * Run matmul and the convolutions on WebAssembly SIMD kernels, where the runtime has WebAssembly
   * SIMD (Node, and every current browser); otherwise, or with false, every kernel is TypeScript.
   * Default true.
   */
  readonly simd?: boolean;
}

/**
 * kiln's CPU: the host device of @kiln/ir with the kernels of this package (every primitive, and
 * fast paths for the composites: fused loops, one-pass softmax and losses, direct convolution and
 * pooling), matmul and the convolutions on WebAssembly SIMD where the runtime has it. Memory
 * operations complete at once; freed memory is kept for the next allocation of its size.
 */
export class CpuDevice extends HostDevice {
  constructor(options: CpuDeviceOptions = {}) {
    super({
      name: options.name ?? 'cpu:0',
      kind: 'cpu',
      kernels: (options.simd !== false && simdKernels()) || KERNELS,
      // Rough single-thread figures for the default cost model; the placer needs ratios, not truth.
      info: { flopsPerSecond: 2e9, bytesPerSecond: 4e9 },
      shared: options.shared ?? false,
      recycle: true,
      declines: (node) => (node.op === 'fused' ? withoutExpression(node.attrs) : undefined),
    });
  }
}

/** The plugin object: what `DeviceRegistry.register` takes. */
export const cpuPlugin: DevicePlugin<CpuDeviceOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'cpu',
  create: (options) => new CpuDevice(options),
};

/** Why a fused group cannot be one generated loop here: an op of it with no expression, if any. */
function withoutExpression(attrs: Readonly<Record<string, unknown>>): string | undefined {
  const program = (attrs.program ?? []) as readonly (readonly [string, ...unknown[]])[];
  const op = program.map((step) => step[0]).find((name) => !hasExpression(name));
  return op === undefined ? undefined : `the fused loop has no expression for ${op} (it runs op by op)`;
}
