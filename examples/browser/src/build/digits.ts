import type { Split } from '../../../mnist/src/data.js';
import { type DigitsManifest, PIXELS, type SplitLayout } from '../digits-format.js';

/**
 * Packs the MNIST example's train/test split (the same seeded split, so the page's accuracy is
 * comparable with `npm start` in examples/mnist) into the page's binary asset.
 */
export function packDigits(train: Split, test: Split): { manifest: DigitsManifest; bytes: Uint8Array } {
  const size = (s: Split) => s.labels.length * (PIXELS + 1);
  const bytes = new Uint8Array(size(train) + size(test));
  let offset = 0;
  const put = (split: Split): SplitLayout => {
    const count = split.labels.length;
    const imagesOffset = offset;
    const pixels = split.images.data;
    for (let i = 0; i < count * PIXELS; i++) bytes[offset + i] = Math.round(Number(pixels[i]) * 255);
    offset += count * PIXELS;
    const labelsOffset = offset;
    bytes.set(split.labels, offset);
    offset += count;
    return { count, imagesOffset, labelsOffset };
  };
  const manifest: DigitsManifest = {
    pixels: PIXELS,
    bytes: bytes.byteLength,
    train: put(train),
    test: put(test),
  };
  return { manifest, bytes };
}
