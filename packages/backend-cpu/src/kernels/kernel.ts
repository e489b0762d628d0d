import type { ConcreteType, HostArray } from '@kiln/ir';

/** A node as a kernel factory sees it at compile time. */
export interface KernelNode<A> {
  readonly attrs: A;
  readonly inputs: readonly ConcreteType[];
  readonly outputs: readonly ConcreteType[];
}

/**
 * A compiled kernel: everything that depends only on shapes and attributes (strides, loop plans,
 * generated loops) is worked out once by the factory; the returned function only loops.
 */
export type KernelFn = (inputs: readonly HostArray[], outputs: readonly HostArray[]) => void;
export type KernelFactory<A> = (node: KernelNode<A>) => KernelFn;
