import { describe, expect, it } from 'vitest';
import { BufferPool } from '../src/abi/buffer-pool.js';
import { HostDevice, type HostDeviceOptions } from '../src/abi/host-device.js';
import { hostArray } from '../src/abi/host-memory.js';
import { REFERENCE_KERNELS } from '../src/abi/reference-kernels.js';

/** A host device that recycles its buffers, as the CPU and native devices do. */
const recycling = (options: Partial<HostDeviceOptions> = {}) =>
  new HostDevice({ name: 'host:0', kind: 'host', kernels: REFERENCE_KERNELS, recycle: true, ...options });

/** The memory behind a host buffer handle (to see whether two handles share it). */
const memoryOf = (b: unknown) => (b as { bytes: ArrayBuffer | SharedArrayBuffer }).bytes;

describe('host buffer reuse', () => {
  it('hands a freed buffer to the next allocation of its size, zeroed, and refuses its old handle', async () => {
    const device = recycling();
    const n = 1 << 20;
    const first = device.allocate(n);
    await device.write(first, 0, new Uint8Array(n).fill(7));
    const memory = memoryOf(first);
    device.free(first);
    const second = device.allocate(n);
    // The same memory (no new pages to fault in), but it reads as a fresh buffer does.
    expect(memoryOf(second)).toBe(memory);
    expect((await device.read(second, 0, n)).every((b) => b === 0)).toBe(true);
    // The first handle stays freed: using it is an error, not a window onto the second.
    await expect(device.read(first, 0, 4)).rejects.toThrow(/freed/);
    expect(() => device.free(first)).toThrow(/freed/);
    // A different size gets memory of its own.
    expect(memoryOf(device.allocate(n + 4))).not.toBe(memory);
  });

  it('keeps no more than its capacity in bytes, nor more than its limit of one size', () => {
    const pool = new BufferPool(3 * 1024, 4);
    for (let i = 0; i < 5; i++) pool.give(new ArrayBuffer(1024));
    expect(pool.bytes).toBe(3 * 1024);
    expect(pool.take(1024)).toBeInstanceOf(ArrayBuffer);
    expect(pool.bytes).toBe(2 * 1024);
    expect(pool.take(2 * 1024)).toBeUndefined();
    pool.clear();
    expect(pool.take(1024)).toBeUndefined();
    // A caller about to write every byte takes a kept buffer as it is, not zeroed again.
    const dirty = new ArrayBuffer(1024);
    new Uint8Array(dirty).fill(9);
    pool.give(dirty);
    const taken = pool.take(1024, false)!;
    expect(taken).toBe(dirty);
    expect(new Uint8Array(taken)[0]).toBe(9);
    // Tiny buffers are kept too (making one costs more than its bytes), up to the per-size limit.
    for (let i = 0; i < 10; i++) pool.give(new ArrayBuffer(4));
    expect(pool.bytes).toBe(4 * 4);
    pool.give(new ArrayBuffer(0));
    expect(pool.bytes).toBe(16);
  });

  it('hands back the typed array a freed buffer was bound as, zeroed, instead of making another', () => {
    const device = recycling();
    const bind = (buffer: ReturnType<typeof device.allocate>, dtype: 'float32' | 'int32') =>
      hostArray(device.name, { buffer, byteOffset: 0, dtype, shape: [4] }, 'x');
    const first = device.allocate(16);
    const array = bind(first, 'float32');
    array.fill(7);
    device.free(first);
    const second = device.allocate(16);
    expect(bind(second, 'float32')).toBe(array);
    expect(Array.from(array)).toEqual([0, 0, 0, 0]);
    // Bound as another dtype, it gets an array of that dtype over the same memory.
    const asInt = bind(second, 'int32');
    expect(asInt).toBeInstanceOf(Int32Array);
    expect(asInt.buffer).toBe(array.buffer);
    // The freed handle's array is not a way in: the handle stays refused.
    expect(() => bind(first, 'float32')).toThrow(/freed/);
    // An array over part of a buffer does not come back with it.
    const pool = new BufferPool();
    const buffer = new ArrayBuffer(16);
    pool.give(buffer, new Float32Array(buffer, 4, 2));
    expect(pool.take(16)).toBe(buffer);
    expect(pool.takenArray).toBeUndefined();
  });

  it('recycles only where the device asks for it', () => {
    const device = recycling({ recycle: false });
    const a = device.allocate(1 << 20);
    const memory = memoryOf(a);
    device.free(a);
    expect(memoryOf(device.allocate(1 << 20))).not.toBe(memory);
  });

  it('does not pool shared memory, which another thread may still map', () => {
    const device = recycling({ shared: true });
    const a = device.allocate(1 << 20);
    const memory = memoryOf(a);
    device.free(a);
    expect(memoryOf(device.allocate(1 << 20))).not.toBe(memory);
  });
});
