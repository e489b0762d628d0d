import { hostArray } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { differing } from './differing-bits.js';

/**
 * The native device's buffers start on a 64-byte cache line, where V8 starts its ArrayBuffers 0,
 * 16, 32 or 48 bytes past one: a vector loop's AVX-512 load at the start of an array then never
 * straddles two lines.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native memory tests: ${unavailableReason}`);

describe.skipIf(!addon && !required)('backend-native memory', () => {
  it('gives kernels arrays on a cache line, fresh and reused, small and large', async () => {
    const device = new NativeDevice({ threads: 1 });
    const lengths = [1, 3, 25, 1000, 65_536, 1 << 20];
    const offsets = new Set<number>();
    for (let round = 0; round < 2; round++) {
      // The second round takes the first's buffers back from the pool.
      const buffers = lengths.map((n) => device.allocate(4 * n));
      for (const [i, buffer] of buffers.entries()) {
        const view = { buffer, byteOffset: 0, dtype: 'float32', shape: [lengths[i]!] } as const;
        const array = hostArray(device.name, view, 'test');
        expect(addon!.addressOf(array), `${lengths[i]} floats, round ${round}`).toBe(0);
        expect(array.some((v) => v !== 0)).toBe(false);
        array.fill(round + 1);
        const read = new Float32Array((await device.read(buffer, 0, 4 * lengths[i]!)).buffer);
        expect(differing(read, array)).toBe(0);
      }
      for (const buffer of buffers) device.free(buffer);
    }
    // V8's own start off a line, most of the time (which is why the device moves them).
    for (let i = 0; i < 64; i++)
      offsets.add(addon!.addressOf(new Float32Array(new ArrayBuffer(4 * (i + 1)))));
    expect([...offsets].some((o) => o !== 0)).toBe(true);
  });

  it('refuses what is not an ArrayBuffer', () => {
    expect(() => addon!.alignedStart(new Float32Array(4) as never)).toThrow(/an ArrayBuffer/);
    expect(addon!.alignedStart(new ArrayBuffer(0))).toBeLessThan(64);
  });
});
