import type { ConcreteType, DType } from '@kiln/ir';
import type { Dispatch, TensorArg, TensorRef } from '../shader.js';

/** What a kernel factory sees of one node: concrete types, attributes, and where its tensors are. */
export interface KernelArgs<A> {
  readonly attrs: A;
  readonly inputs: readonly ConcreteType[];
  readonly outputs: readonly ConcreteType[];
  readonly ins: readonly TensorRef[];
  readonly outs: readonly TensorRef[];
  /** Reserves node-private scratch memory of `bytes` bytes. */
  temp(bytes: number): TensorRef;
  /** Uploads bytes once, at compile time, into node-private memory (for constants). */
  upload(data: Uint8Array): TensorRef;
}

/** Builds the dispatches that compute one node; run in order, each sees the previous one's writes. */
export type KernelFactory<A> = (args: KernelArgs<A>) => Dispatch[];

export const read = (ref: TensorRef, dtype: DType): TensorArg => ({ ref, dtype, access: 'read' });
export const write = (ref: TensorRef, dtype: DType): TensorArg => ({ ref, dtype, access: 'write' });
