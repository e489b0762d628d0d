import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, WG } from '../shader.js';
import { treeReduce } from '../wgsl/workgroup.js';
import { type KernelArgs, type KernelFactory, read, write } from './kernel.js';
import { padBefore } from './window.js';

type Attrs = Readonly<Record<string, unknown>>;

/**
 * The three convolution ops as direct loops: conv2d gathers its window, the input gradient gathers
 * every output position whose window covers its pixel (the stride must divide the distance), a
 * thread per output element; the filter gradient is a reduction over batch and output positions.
 * Gathering instead of scattering keeps each output written by exactly one thread. (An implicit
 * GEMM on the matmul kernel was tried: its 128-wide tiles waste most of their work on the narrow
 * channel counts of typical layers, and it ran slower on lavapipe.)
 *
 * Params: [count, N, H, W, C, OH, OW, F, KH, KW, sh, sw, dh, dw, padTop, padLeft].
 */
function geometry(
  a: KernelArgs<Attrs>,
  x: readonly number[],
  y: readonly number[],
  f: readonly number[],
): number[] {
  const strides = (a.attrs.strides as readonly number[] | undefined) ?? [1, 1];
  const dilations = (a.attrs.dilations as readonly number[] | undefined) ?? [1, 1];
  const padding = (a.attrs.padding as string | undefined) ?? 'valid';
  const pads = (a.attrs.pads as readonly (readonly [number, number])[] | undefined) ?? [];
  const [n, h, w, c] = x as [number, number, number, number];
  const [, oh, ow, fo] = y as [number, number, number, number];
  const [kh, kw] = f as [number, number];
  const [sh, sw] = strides as [number, number];
  const [dh, dw] = dilations as [number, number];
  return [
    n,
    h,
    w,
    c,
    oh,
    ow,
    fo,
    kh,
    kw,
    sh,
    sw,
    dh,
    dw,
    padBefore(h, oh, kh, sh, dh, padding, pads[0]),
    padBefore(w, ow, kw, sw, dw, padding, pads[1]),
  ];
}

const NAMES = `
  let N = P(1u); let H = i32(P(2u)); let W = i32(P(3u)); let C = P(4u);
  let OH = i32(P(5u)); let OW = i32(P(6u)); let F = P(7u); let KH = i32(P(8u)); let KW = i32(P(9u));
  let SH = i32(P(10u)); let SW = i32(P(11u)); let DH = i32(P(12u)); let DW = i32(P(13u));
  let PT = i32(P(14u)); let PL = i32(P(15u));`;

function convDispatch(key: string, a: KernelArgs<Attrs>, params: number[], loop: string): Dispatch[] {
  const out = a.outputs[0]!;
  const count = sizeOf(out.shape);
  if (count === 0) return [];
  return [
    {
      key,
      body: `${ENTRY(WG)} {
  let i = gid(wid, nwg) * ${WG}u + lid;
  if (i >= P(0u)) { return; }${NAMES}
  var acc = 0.0;
${loop}
  st2(i, acc);
}`,
      tensors: [read(a.ins[0]!, 'float32'), read(a.ins[1]!, 'float32'), write(a.outs[0]!, 'float32')],
      params: [count, ...params],
      workgroups: Math.ceil(count / WG),
    },
  ];
}

export const conv2d: KernelFactory<Attrs> = (a) => {
  const [x, f] = a.inputs as [(typeof a.inputs)[0], (typeof a.inputs)[0]];
  const y = a.outputs[0]!;
  return convDispatch(
    'conv2d',
    a,
    geometry(a, x!.shape, y.shape, f!.shape),
    `  let fo = i % F;
  let ox = (i / F) % u32(OW);
  let oy = (i / (F * u32(OW))) % u32(OH);
  let b = i / (F * u32(OW) * u32(OH));
  for (var ky = 0; ky < KH; ky++) {
    let iy = i32(oy) * SH - PT + ky * DH;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx++) {
      let ix = i32(ox) * SW - PL + kx * DW;
      if (ix < 0 || ix >= W) { continue; }
      let xb = ((b * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C;
      let fb = (u32(ky) * u32(KW) + u32(kx)) * C * F + fo;
      for (var ci = 0u; ci < C; ci++) { acc = acc + ld0(xb + ci) * ld1(fb + ci * F); }
    }
  }`,
  );
};

export const conv2dBackpropInput: KernelFactory<Attrs> = (a) => {
  const [dy, f] = a.inputs as [(typeof a.inputs)[0], (typeof a.inputs)[0]];
  const dx = a.outputs[0]!;
  return convDispatch(
    'conv2d-dx',
    a,
    geometry(a, dx.shape, dy!.shape, f!.shape),
    `  let ci = i % C;
  let ix = i32((i / C) % u32(W));
  let iy = i32((i / (C * u32(W))) % u32(H));
  let b = i / (C * u32(W) * u32(H));
  for (var ky = 0; ky < KH; ky++) {
    let ty = iy + PT - ky * DH;
    if (ty < 0 || ty % SH != 0 || ty / SH >= OH) { continue; }
    let oy = ty / SH;
    for (var kx = 0; kx < KW; kx++) {
      let tx = ix + PL - kx * DW;
      if (tx < 0 || tx % SW != 0 || tx / SW >= OW) { continue; }
      let ox = tx / SW;
      let yb = ((b * u32(OH) + u32(oy)) * u32(OW) + u32(ox)) * F;
      let fb = ((u32(ky) * u32(KW) + u32(kx)) * C + ci) * F;
      for (var fo = 0u; fo < F; fo++) { acc = acc + ld0(yb + fo) * ld1(fb + fo); }
    }
  }`,
  );
};

/**
 * The filter gradient sums over the batch and every output position, a long sum per (few) filter
 * elements: so, as a reduction, a workgroup per filter element whose threads stride over
 * (b, oy, ox) and combine in a workgroup tree.
 */
export const conv2dBackpropFilter: KernelFactory<Attrs> = (a) => {
  const [x, dy] = a.inputs as [(typeof a.inputs)[0], (typeof a.inputs)[0]];
  const df = a.outputs[0]!;
  const count = sizeOf(df.shape);
  if (count === 0) return [];
  return [
    {
      key: 'conv2d-df',
      body: `${treeReduce('wsum', 'f32', (p, q) => `(${p} + ${q})`, WG)}
${ENTRY(WG)} {
  let i = gid(wid, nwg);
  if (i >= P(0u)) { return; }${NAMES}
  let fo = i % F;
  let ci = (i / F) % C;
  let kx = i32((i / (F * C)) % u32(KW));
  let ky = i32(i / (F * C * u32(KW)));
  let positions = N * u32(OH) * u32(OW);
  var acc = 0.0;
  for (var p = lid; p < positions; p = p + ${WG}u) {
    let ox = i32(p % u32(OW));
    let oy = i32((p / u32(OW)) % u32(OH));
    let b = p / (u32(OW) * u32(OH));
    let iy = oy * SH - PT + ky * DH;
    let ix = ox * SW - PL + kx * DW;
    if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
      acc = acc + ld0(((b * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C + ci) * ld1(p * F + fo);
    }
  }
  let total = wsum(acc, lid);
  if (lid == 0u) { st2(i, total); }
}`,
      tensors: [read(a.ins[0]!, 'float32'), read(a.ins[1]!, 'float32'), write(a.outs[0]!, 'float32')],
      params: [count, ...geometry(a, x!.shape, dy!.shape, df.shape)],
      workgroups: count,
    },
  ];
};
