/** How many elements of two float32 arrays differ in their bits (0 when they are the same). */
export function differing(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const [p, q] = [x, y].map((v) => new Uint32Array(Float32Array.from(v).buffer));
  if (p!.length !== q!.length) return Math.max(p!.length, q!.length);
  let count = 0;
  for (let i = 0; i < p!.length; i++) if (p![i] !== q![i]) count++;
  return count;
}
