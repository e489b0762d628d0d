import { type ConcreteType, HostTensor } from '@kiln/ir';

/** A HostTensor over a copy of bytes read from a device. */
export function hostTensorFromBytes(type: ConcreteType, bytes: Uint8Array): HostTensor {
  const copy = bytes.slice();
  const buffer = copy.buffer;
  const data =
    type.dtype === 'float32'
      ? new Float32Array(buffer, 0, copy.byteLength / 4)
      : type.dtype === 'int32'
        ? new Int32Array(buffer, 0, copy.byteLength / 4)
        : copy;
  return new HostTensor(type.dtype, [...type.shape], data);
}
