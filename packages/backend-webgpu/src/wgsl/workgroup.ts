/**
 * A workgroup tree reduction: each thread offers a value, pairs combine in log2(size) rounds with
 * a barrier between rounds, and every thread gets the result. Call it from uniform control flow.
 */
export function treeReduce(
  name: string,
  type: string,
  combine: (a: string, b: string) => string,
  size: number,
): string {
  return `var<workgroup> wg_${name}: array<${type}, ${size}>;
fn ${name}(v: ${type}, lid: u32) -> ${type} {
  wg_${name}[lid] = v;
  workgroupBarrier();
  for (var s = ${size / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { wg_${name}[lid] = ${combine(`wg_${name}[lid]`, `wg_${name}[lid + s]`)}; }
    workgroupBarrier();
  }
  let r = wg_${name}[0];
  workgroupBarrier();
  return r;
}
`;
}

/** WGSL that sets `off` to sum(c[d] * stride[d]) for index `idx` over dims at params [shapeAt, strideAt). */
export function unravelTo(off: string, idx: string, rank: number, shapeAt: number, strideAt: number): string {
  let s = `  var ${off} = 0u;\n  { var rem = ${idx};\n`;
  for (let d = rank - 1; d >= 0; d--) {
    s += `    { let c = rem % P(${shapeAt + d}u); rem = rem / P(${shapeAt + d}u); ${off} = ${off} + c * P(${strideAt + d}u); }\n`;
  }
  return `${s}  }\n`;
}
