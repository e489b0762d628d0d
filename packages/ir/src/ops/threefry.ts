/**
 * Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
 * A counter-based generator: the output for (key, counter) is a pure function of both, so the n-th
 * random number is the same on every device and every worker, in any order. Only 32-bit adds,
 * rotations and xors, which every backend (JS, WGSL, C++) has.
 */
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;
const PARITY = 0x1bd11bda;

const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;

/** Writes the two output words for (k0, k1) and counter (c0, c1) into out[0], out[1]. */
export function threefry2x32(k0: number, k1: number, c0: number, c1: number, out: Uint32Array): void {
  const ks = [k0 >>> 0, k1 >>> 0, (PARITY ^ k0 ^ k1) >>> 0] as const;
  let x0 = (c0 + ks[0]) >>> 0;
  let x1 = (c1 + ks[1]) >>> 0;
  for (let block = 0; block < 5; block++) {
    for (let r = 0; r < 4; r++) {
      x0 = (x0 + x1) >>> 0;
      x1 = rotl(x1, ROTATIONS[(block % 2) * 4 + r]!) ^ x0;
    }
    const s = block + 1;
    x0 = (x0 + ks[s % 3]!) >>> 0;
    x1 = (x1 + ks[(s + 1) % 3]! + s) >>> 0;
  }
  out[0] = x0;
  out[1] = x1 >>> 0;
}

/** 23 random mantissa bits as a float in [0, 1): exactly representable in float32. */
export const bitsToUnit = (bits: number): number => (bits >>> 9) * 2 ** -23;
