import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, type TensorArg, WG } from '../shader.js';
import { type KernelArgs, type KernelFactory, read, write } from './kernel.js';
import { padBefore } from './window.js';

type Attrs = Readonly<Record<string, unknown>>;

/** Params: [count, N, H, W, C, OH, OW, KH, KW, SH, SW, PT, PL]; x is the unpooled NHWC shape. */
function params(a: KernelArgs<Attrs>, x: readonly number[], y: readonly number[], count: number): number[] {
  const [kh, kw] = a.attrs.windowSize as [number, number];
  const [sh, sw] = a.attrs.strides as [number, number];
  const padding = (a.attrs.padding as string | undefined) ?? 'valid';
  const [n, h, w, c] = x as [number, number, number, number];
  const [, oh, ow] = y as [number, number, number];
  return [
    count,
    n,
    h,
    w,
    c,
    oh,
    ow,
    kh,
    kw,
    sh,
    sw,
    padBefore(h, oh, kh, sh, 1, padding, undefined),
    padBefore(w, ow, kw, sw, 1, padding, undefined),
  ];
}

const NAMES = `
  let H = i32(P(2u)); let W = i32(P(3u)); let C = P(4u); let OH = i32(P(5u)); let OW = i32(P(6u));
  let KH = i32(P(7u)); let KW = i32(P(8u)); let SH = i32(P(9u)); let SW = i32(P(10u));
  let PT = i32(P(11u)); let PL = i32(P(12u));`;

/** A thread per element of the pooled output (b, oy, ox, c). */
const POOLED = `
  let c = i % C;
  let ox = i32((i / C) % u32(OW));
  let oy = i32((i / (C * u32(OW))) % u32(OH));
  let b = i / (C * u32(OW) * u32(OH));`;

/** A thread per element of the unpooled input (b, iy, ix, c). */
const UNPOOLED = `
  let c = i % C;
  let ix = i32((i / C) % u32(W));
  let iy = i32((i / (C * u32(W))) % u32(H));
  let b = i / (C * u32(W) * u32(H));`;

/** The first maximal element of window (oy, ox) (a NaN counts as maximal), as y * W + x. */
const FIRST_MAX = `
fn firstMax(b: u32, c: u32, oy: i32, ox: i32) -> i32 {${NAMES}
  var best = -1;
  var value = 0.0;
  for (var ky = 0; ky < KH; ky++) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx++) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let v = ld0(((b * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C + c);
      if (best < 0 || (!isnan_(value) && (v > value || isnan_(v)))) { best = iy * W + ix; value = v; }
    }
  }
  return best;
}`;

function dispatch(key: string, tensors: TensorArg[], p: number[], body: string, pre = ''): Dispatch[] {
  const count = p[0]!;
  if (count === 0) return [];
  return [
    {
      key,
      body: `${pre}
${ENTRY(WG)} {
  let i = gid(wid, nwg) * ${WG}u + lid;
  if (i >= P(0u)) { return; }${NAMES}
${body}
}`,
      tensors,
      params: p,
      workgroups: Math.ceil(count / WG),
    },
  ];
}

/** Rows (or columns) of window o that lie inside [0, size). */
const covered = (o: string, s: string, p: string, k: string, size: string) =>
  `(min(${o} * ${s} - ${p} + ${k}, ${size}) - max(${o} * ${s} - ${p}, 0))`;

/**
 * Pooling: a thread per pooled element loops over its window, skipping padding. Padding never
 * counts: max takes the covered elements (NaN propagates), the average divides by their number.
 */
export function poolKernel(kind: 'max' | 'avg'): KernelFactory<Attrs> {
  return (a) => {
    const x = a.inputs[0]!;
    const y = a.outputs[0]!;
    const init = kind === 'max' ? '-inf_()' : '0.0';
    const step = kind === 'max' ? 'fmax_(acc, v)' : '(acc + v)';
    const result =
      kind === 'max'
        ? 'acc'
        : `acc / f32(${covered('oy', 'SH', 'PT', 'KH', 'H')} * ${covered('ox', 'SW', 'PL', 'KW', 'W')})`;
    return dispatch(
      `${kind}pool`,
      [read(a.ins[0]!, 'float32'), write(a.outs[0]!, 'float32')],
      params(a, x.shape, y.shape, sizeOf(y.shape)),
      `${POOLED}
  var acc = ${init};
  for (var ky = 0; ky < KH; ky++) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx++) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let v = ld0(((b * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C + c);
      acc = ${step};
    }
  }
  st1(i, ${result});`,
    );
  };
}

/** The windows that cover input row iy: oy from ceil((iy + PT - KH + 1) / SH) to (iy + PT) / SH. */
const COVERING = `
  let oy0 = max(0, (iy + PT - KH + SH) / SH);
  let oy1 = min(OH - 1, (iy + PT) / SH);
  let ox0 = max(0, (ix + PL - KW + SW) / SW);
  let ox1 = min(OW - 1, (ix + PL) / SW);`;

/**
 * maxPoolGrad, gathered: a thread per input element adds the dy of every window that covers it
 * and whose first maximum it is (recomputed from x, as the reference does).
 */
export const maxPoolGrad: KernelFactory<Attrs> = (a) => {
  const x = a.inputs[0]!;
  const dy = a.inputs[2]!;
  return dispatch(
    'maxpool-grad',
    [read(a.ins[0]!, 'float32'), read(a.ins[2]!, 'float32'), write(a.outs[0]!, 'float32')],
    params(a, x.shape, dy.shape, sizeOf(x.shape)),
    `${UNPOOLED}${COVERING}
  var acc = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      if (firstMax(b, c, oy, ox) == iy * W + ix) {
        acc = acc + ld1(((b * u32(OH) + u32(oy)) * u32(OW) + u32(ox)) * C + c);
      }
    }
  }
  st2(i, acc);`,
    FIRST_MAX,
  );
};

/** avgPoolGrad, gathered: each covering window's dy divided by the number of elements it covers. */
export const avgPoolGrad: KernelFactory<Attrs> = (a) => {
  const dy = a.inputs[0]!;
  const x = a.outputs[0]!;
  return dispatch(
    'avgpool-grad',
    [read(a.ins[0]!, 'float32'), write(a.outs[0]!, 'float32')],
    params(a, x.shape, dy.shape, sizeOf(x.shape)),
    `${UNPOOLED}${COVERING}
  var acc = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let n = ${covered('oy', 'SH', 'PT', 'KH', 'H')} * ${covered('ox', 'SW', 'PL', 'KW', 'W')};
      acc = acc + ld0(((b * u32(OH) + u32(oy)) * u32(OW) + u32(ox)) * C + c) / f32(n);
    }
  }
  st1(i, acc);`,
  );
};
