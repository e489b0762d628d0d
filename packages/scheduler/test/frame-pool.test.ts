import { describe, expect, it } from 'vitest';
import { FramePool } from '../src/net/frame-pool.js';

describe('FramePool', () => {
  it('hands a frame given back to the next take of its size, and only its own frames', () => {
    const pool = new FramePool(1 << 20, 2);
    const a = pool.take(1000);
    expect(a.byteLength).toBe(1000);
    // A view into the frame gives the whole frame back.
    pool.give(a.subarray(100, 200));
    expect(pool.bytes).toBe(1000);
    expect(pool.take(1000).buffer).toBe(a.buffer);
    expect(pool.bytes).toBe(0);
    // Memory the pool did not make is not its to keep: shared memory, a stranger's buffer.
    pool.give(new Uint8Array(new SharedArrayBuffer(1000)));
    pool.give(new Uint8Array(1000));
    expect(pool.bytes).toBe(0);
    // Another size gets memory of its own.
    expect(pool.take(1004).buffer).not.toBe(a.buffer);
  });

  it('keeps no more than its capacity, nor more than its limit of one size, nor a frame twice', () => {
    const pool = new FramePool(3000, 2);
    const frames = [0, 1, 2].map(() => pool.take(1000));
    for (const f of frames) pool.give(f);
    expect(pool.bytes).toBe(2000);
    pool.give(frames[0]!);
    expect(pool.bytes).toBe(2000);
    const big = pool.take(2000);
    pool.give(big);
    expect(pool.bytes).toBe(2000);
  });
});
