import { type Dispatch, ENTRY, type TensorRef, WG } from '../shader.js';

/**
 * Byte-exact copies. Storage is u32 words while bool tensors are bytes at any offset, so a thread
 * owns one destination word and merges the bytes that belong to the copy into it: no two threads
 * write the same word, and bytes outside the destination are left as they were.
 */
const mergeWords = (n: string, byteOf: string) => `${ENTRY(WG)} {
  let t = gid(wid, nwg) * ${WG}u + lid;
  let d0 = P(2u);
  let n = ${n};
  if (t >= ((d0 & 3u) + n + 3u) / 4u) { return; }
  let w = (d0 >> 2u) + t;
  var word = rw1(w);
  for (var k = 0u; k < 4u; k++) {
    let g = w * 4u + k;
    if (g >= d0 && g < d0 + n) {
      let e = g - d0;
      word = (word & ~(0xffu << (k * 8u))) | ((${byteOf}) << (k * 8u));
    }
  }
  ww1(w, word);
}`;

/** Copies `bytes` bytes from `src` to `dst` (both addressed in bytes). */
export function copyBytes(src: TensorRef, dst: TensorRef, bytes: number): Dispatch {
  return {
    key: 'copy-bytes',
    body: mergeWords('P(0u)', '(rw0((P(1u) + e) >> 2u) >> (((P(1u) + e) & 3u) * 8u)) & 0xffu'),
    tensors: [
      { ref: src, dtype: 'bool', access: 'read' },
      { ref: dst, dtype: 'bool', access: 'raw' },
    ],
    params: [bytes],
    workgroups: Math.ceil((bytes + 3) / 4 / WG),
  };
}

/** Packs `count` bools stored one per word (`src`, scratch) into bytes (`dst`). */
export function packBools(src: TensorRef, dst: TensorRef, count: number): Dispatch {
  return {
    key: 'pack-bools',
    body: mergeWords('P(0u)', 'b2u(ld0(e))'),
    tensors: [
      { ref: src, dtype: 'bool', access: 'read' },
      { ref: dst, dtype: 'bool', access: 'raw' },
    ],
    params: [count],
    workgroups: Math.ceil((count + 3) / 4 / WG),
  };
}
