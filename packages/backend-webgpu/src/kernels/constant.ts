import { byteSizeOf, type TensorValue } from '@kiln/ir';
import { copyBytes } from './copy.js';
import type { KernelFactory } from './kernel.js';

/** A constant is uploaded once at compile time and copied into its value's place on each run. */
export const constant: KernelFactory<{ value: TensorValue }> = (a) => {
  const { data } = a.attrs.value;
  const bytes = byteSizeOf(a.outputs[0]!);
  if (bytes === 0) return [];
  const src = a.upload(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return [copyBytes(src, a.outs[0]!, bytes)];
};
