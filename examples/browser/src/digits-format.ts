/**
 * The digits asset the build writes and the page reads: one binary file of uint8 pixels and labels,
 * described by a small JSON manifest. Shared by both sides so they cannot disagree on the layout.
 * Pixels are stored as round(value * 255): a quarter of the bytes of float32, and the mnist
 * package's three-decimal values lose less than 1/510 each.
 */
export const PIXELS = 784;
export const CLASSES = 10;
export const DIGITS_FILE = 'digits.bin';
export const MANIFEST_FILE = 'digits.json';

export interface SplitLayout {
  readonly count: number;
  /** Byte offset of `count * PIXELS` uint8 pixels, row-major. */
  readonly imagesOffset: number;
  /** Byte offset of `count` uint8 labels. */
  readonly labelsOffset: number;
}

export interface DigitsManifest {
  readonly pixels: typeof PIXELS;
  readonly bytes: number;
  readonly train: SplitLayout;
  readonly test: SplitLayout;
}

/** A split as the page holds it. */
export interface DigitSplit {
  readonly count: number;
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

export function readSplit(bytes: Uint8Array, layout: SplitLayout): DigitSplit {
  const end = (offset: number, length: number) => {
    if (offset + length > bytes.byteLength) throw new Error(`${DIGITS_FILE} is truncated`);
    return bytes.subarray(offset, offset + length);
  };
  return {
    count: layout.count,
    images: end(layout.imagesOffset, layout.count * PIXELS),
    labels: end(layout.labelsOffset, layout.count),
  };
}
