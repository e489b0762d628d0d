/**
 * Threefry-2x32 with 20 rounds in WGSL, generated straight-line from the same rotation and key
 * schedule as the IR's definition (packages/ir/src/ops/threefry.ts), so every device draws the same
 * numbers for the same (key, counter). WGSL's u32 arithmetic wraps, as the algorithm needs.
 */
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;

function rounds(): string {
  let s = '';
  for (let block = 0; block < 5; block++) {
    for (let r = 0; r < 4; r++) {
      const rot = ROTATIONS[(block % 2) * 4 + r]!;
      s += `  x0 = x0 + x1; x1 = ((x1 << ${rot}u) | (x1 >> ${32 - rot}u)) ^ x0;\n`;
    }
    const i = block + 1;
    s += `  x0 = x0 + ks[${i % 3}]; x1 = x1 + ks[${(i + 1) % 3}] + ${i}u;\n`;
  }
  return s;
}

export const THREEFRY_WGSL = `
fn threefry(k0: u32, k1: u32, c0: u32, c1: u32) -> vec2<u32> {
  let ks = array<u32, 3>(k0, k1, 0x1bd11bdau ^ k0 ^ k1);
  var x0 = c0 + k0;
  var x1 = c1 + k1;
${rounds()}  return vec2<u32>(x0, x1);
}
// 23 random mantissa bits as a float in [0, 1), exactly as the IR's bitsToUnit.
fn unit(bits: u32) -> f32 { return f32(bits >> 9u) * 1.1920928955078125e-07; }
`;
