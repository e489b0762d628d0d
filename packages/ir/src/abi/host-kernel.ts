import type { HostArray } from '../dtype.js';
import type { CompositeOpName, OpAttrs, OpName, PrimitiveOpName } from '../ops/index.js';
import { EXECUTOR_OPS, opDef } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import { type DeviceInfo, estimateSeconds, type NodeQuery, type Support } from './device.js';

/**
 * Kernels for devices whose memory is host memory (typed arrays): the CPU backend, a plugin's
 * first device, a device in a test. A kernel factory sees a node once, at compile time, and returns
 * the function that computes it; everything that depends only on shapes and attributes (strides,
 * loop plans, generated code) is worked out in the factory, and the function only loops.
 */
export interface KernelNode<A> {
  readonly attrs: A;
  readonly inputs: readonly ConcreteType[];
  readonly outputs: readonly ConcreteType[];
}

/**
 * Computes a node's outputs from its inputs, each a typed array in the dtype's layout. A kernel
 * whose work is long enough to be worth another thread may also offer `offThread`: the same
 * computation, started on a thread of its own and settled when the outputs are written, so the
 * JavaScript thread is free meanwhile (timers, sockets, other work). An asynchronous run uses it;
 * a synchronous one (eager ops) calls the kernel itself.
 */
export interface KernelFn {
  (inputs: readonly HostArray[], outputs: readonly HostArray[]): void;
  readonly offThread?: (inputs: readonly HostArray[], outputs: readonly HostArray[]) => Promise<void>;
}
export type KernelFactory<A> = (node: KernelNode<A>) => KernelFn;

/**
 * A host device's kernel table: a kernel for every primitive (leaving one out is a compile error)
 * and any composites as fast paths (those left out reach the device as their decompositions).
 */
export type KernelTable = { readonly [K in PrimitiveOpName]: KernelFactory<OpAttrs<K>> } & {
  readonly [K in CompositeOpName]?: KernelFactory<OpAttrs<K>>;
};

/** The table's kernel for `op`, if it has one. */
export function kernelIn(
  table: Partial<Record<OpName, unknown>>,
  op: OpName,
): KernelFactory<unknown> | undefined {
  return Object.hasOwn(table, op) ? (table[op] as KernelFactory<unknown>) : undefined;
}

/**
 * The capability answer most devices give: executor ops are never a device's, an op without a
 * kernel is declined (a composite then runs as its decomposition), and anything else costs what
 * the default cost model says for this device's figures.
 */
export function kernelSupport(
  device: { readonly kind: string; readonly info: DeviceInfo },
  node: NodeQuery,
  hasKernel: boolean,
): Support {
  if (EXECUTOR_OPS.has(node.op))
    return { ok: false, reason: `${node.op} is bound by the executor, not run by devices` };
  if (!hasKernel) return { ok: false, reason: `no ${device.kind} kernel for ${node.op}` };
  return {
    ok: true,
    seconds: estimateSeconds(
      opDef(node.op).cost(node.inputs, node.outputs, node.attrs as never),
      device.info,
    ),
  };
}
