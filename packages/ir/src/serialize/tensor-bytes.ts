import type { DType, HostArray } from '../dtype.js';

/**
 * Tensor elements travel as little-endian bytes. Bytes are copied, never converted through numbers,
 * so every bit survives: NaN payloads, -0, subnormals.
 */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const ELEMENT_BYTES: { readonly [D in DType]: number } = { float32: 4, int32: 4, bool: 1 };

export function elementBytes(dtype: DType): number {
  return ELEMENT_BYTES[dtype];
}

function swapInPlace(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** The little-endian bytes of `data` (a view on little-endian hosts, a copy otherwise). */
export function toLittleEndianBytes(data: HostArray): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_IS_LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return view;
  const copy = view.slice();
  swapInPlace(copy, data.BYTES_PER_ELEMENT);
  return copy;
}

/** A fresh typed array of `dtype` from little-endian bytes; the caller checked the length. */
export function fromLittleEndianBytes(dtype: DType, bytes: Uint8Array): HostArray {
  const copy = bytes.slice(); // a new, aligned buffer that does not alias the input
  if (!HOST_IS_LITTLE_ENDIAN) swapInPlace(copy, ELEMENT_BYTES[dtype]);
  switch (dtype) {
    case 'float32':
      return new Float32Array(copy.buffer, 0, copy.length / 4);
    case 'int32':
      return new Int32Array(copy.buffer, 0, copy.length / 4);
    case 'bool':
      return copy;
  }
}
