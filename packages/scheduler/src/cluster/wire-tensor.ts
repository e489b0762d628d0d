import { type ConcreteType, HostTensor } from '@kiln/ir';
import type { WireTensor } from './protocol.js';

/**
 * Tensor bytes between threads live in SharedArrayBuffers: posting one to a MessagePort shares the
 * memory instead of structured-cloning the array, and the same bytes can go to several workers.
 * Each tensor is copied once, into shared memory, where it leaves its device or its caller.
 */
export function sharedBytes(source: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(new SharedArrayBuffer(source.byteLength));
  bytes.set(source);
  return bytes;
}

/** A caller's host tensor as a wire tensor over shared memory (one copy). */
export function toWire(t: HostTensor): WireTensor {
  const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { dtype: t.dtype, shape: [...t.shape], bytes: sharedBytes(view) };
}

/** A device's result bytes as a wire tensor over shared memory (one copy). */
export function wireFromDevice(type: ConcreteType, bytes: Uint8Array): WireTensor {
  return { dtype: type.dtype, shape: [...type.shape], bytes: sharedBytes(bytes) };
}

/**
 * A wire tensor as a host tensor, viewing its bytes where they are aligned for the dtype (shared
 * memory always is) and copying only bytes a decoder left unaligned.
 */
export function fromWire(w: WireTensor): HostTensor {
  const width = w.dtype === 'bool' ? 1 : 4;
  // A copy into a fresh buffer (not `.slice()`, which on a Node Buffer, as msgpackr decodes
  // binary, is a view at the same unaligned offset).
  const bytes = w.bytes.byteOffset % width === 0 ? w.bytes : new Uint8Array(w.bytes);
  const count = bytes.byteLength / width;
  const data =
    w.dtype === 'float32'
      ? new Float32Array(bytes.buffer, bytes.byteOffset, count)
      : w.dtype === 'int32'
        ? new Int32Array(bytes.buffer, bytes.byteOffset, count)
        : bytes;
  return new HostTensor(w.dtype, [...w.shape], data);
}

export const wireType = (w: WireTensor): ConcreteType => ({ dtype: w.dtype, shape: [...w.shape] });
