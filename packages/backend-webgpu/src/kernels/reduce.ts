import { type DType, normalizeAxes, normalizeAxis, sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, floatBits, wgslType } from '../shader.js';
import { treeReduce, unravelTo } from '../wgsl/workgroup.js';
import { type KernelArgs, type KernelFactory, read, write } from './kernel.js';
import { rowMajor } from './map.js';

type Attrs = Readonly<Record<string, unknown>>;
const WG = 64;

interface Reducer {
  readonly init: (t: DType) => string;
  readonly combine: (a: string, b: string, t: DType) => string;
}

const REDUCERS: Record<'sum' | 'prod' | 'mean' | 'max' | 'min', Reducer> = {
  sum: { init: (t) => (t === 'int32' ? '0' : '0.0'), combine: (a, b) => `(${a} + ${b})` },
  mean: { init: () => '0.0', combine: (a, b) => `(${a} + ${b})` },
  prod: { init: (t) => (t === 'int32' ? '1' : '1.0'), combine: (a, b) => `(${a} * ${b})` },
  max: {
    init: (t) => (t === 'int32' ? '(-2147483647 - 1)' : '-inf_()'),
    combine: (a, b, t) => (t === 'int32' ? `max(${a}, ${b})` : `fmax_(${a}, ${b})`),
  },
  min: {
    init: (t) => (t === 'int32' ? '2147483647' : 'inf_()'),
    combine: (a, b, t) => (t === 'int32' ? `min(${a}, ${b})` : `fmin_(${a}, ${b})`),
  },
};

/** The kept and reduced dimensions of `shape`, with the input's strides along each. */
function split(shape: readonly number[], axes: readonly number[]) {
  const strides = rowMajor(shape);
  const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  return {
    keptShape: kept.map((d) => shape[d]!),
    keptStrides: kept.map((d) => strides[d]!),
    redShape: axes.map((d) => shape[d]!),
    redStrides: axes.map((d) => strides[d]!),
  };
}

/** Reduced lengths from which a reduction runs in two passes, and the elements each chunk takes. */
const SPLIT_FROM = 32768;
const CHUNK = 8192;

/**
 * A reduction as workgroups per output element: threads stride over the reduced elements, then
 * combine in a workgroup tree. Kept and reduced dimensions may interleave; their sizes and strides
 * are parameters, so the key is (op, dtype, kept rank, reduced rank). A long reduction (say, a loss
 * summed over a whole data set) would leave one workgroup doing all the work, so from SPLIT_FROM
 * elements the reduced range is cut into chunks reduced in parallel into scratch, and a second
 * dispatch combines the partials; every value is still combined by the same operation.
 */
export function reduction(op: keyof typeof REDUCERS): KernelFactory<Attrs> {
  const r = REDUCERS[op];
  return (a: KernelArgs<Attrs>): Dispatch[] => {
    const x = a.inputs[0]!;
    const out = a.outputs[0]!;
    const nOut = sizeOf(out.shape);
    if (nOut === 0) return [];
    const axes = normalizeAxes(a.attrs.axes as readonly number[] | null, x.shape.length, op);
    const s = split(x.shape, axes);
    const rk = s.keptShape.length;
    const rr = s.redShape.length;
    const count = sizeOf(s.redShape);
    const t = x.dtype;
    const ty = wgslType(t);
    const chunks = count >= SPLIT_FROM ? Math.ceil(count / CHUNK) : 1;
    const chunk = Math.ceil(count / chunks);
    const at = 4 + 2 * rk + 2 * rr;
    const finish = op === 'mean' ? `v / Pf(${at}u)` : 'v';
    const combine = (p: string, q: string) => r.combine(p, q, t);
    // Params: [outputs, count, chunks, chunk, kept shape, kept strides, reduced shape, reduced strides, count as f32].
    const body = `${treeReduce('red', ty, combine, WG)}
${ENTRY(WG)} {
  let w = gid(wid, nwg);
  if (w >= P(0u) * P(2u)) { return; }
  let o = w / P(2u);
  let lo = (w % P(2u)) * P(3u);
  let hi = min(P(1u), lo + P(3u));
${unravelTo('base', 'o', rk, 4, 4 + rk)}
  var acc: ${ty} = ${r.init(t)};
  for (var k = lo + lid; k < hi; k = k + ${WG}u) {
${unravelTo('off', 'k', rr, 4 + 2 * rk, 4 + 2 * rk + rr)}
    acc = ${combine('acc', 'ld0(base + off)')};
  }
  let v = red(acc, lid);
  if (lid == 0u) { st1(w, ${chunks > 1 ? 'v' : finish}); }
}`;
    const params = [
      nOut,
      count,
      chunks,
      chunk,
      ...s.keptShape,
      ...s.keptStrides,
      ...s.redShape,
      ...s.redStrides,
    ];
    params.push(floatBits(count));
    if (chunks === 1) {
      return [
        {
          key: `reduce:${op}:k${rk}:r${rr}`,
          body,
          tensors: [read(a.ins[0]!, t), write(a.outs[0]!, out.dtype)],
          params,
          workgroups: nOut,
        },
      ];
    }
    const partials = a.temp(nOut * chunks * 4);
    return [
      {
        key: `reduce-chunks:${op}:k${rk}:r${rr}`,
        body,
        tensors: [read(a.ins[0]!, t), write(partials, t)],
        params,
        workgroups: nOut * chunks,
      },
      {
        key: `reduce-partials:${op}`,
        body: `${treeReduce('red', ty, combine, WG)}
${ENTRY(WG)} {
  let o = gid(wid, nwg);
  if (o >= P(0u)) { return; }
  var acc: ${ty} = ${r.init(t)};
  for (var k = lid; k < P(1u); k = k + ${WG}u) { acc = ${combine('acc', 'ld0(o * P(1u) + k)')}; }
  let v = red(acc, lid);
  if (lid == 0u) { st1(o, ${op === 'mean' ? 'v / Pf(2u)' : 'v'}); }
}`,
        tensors: [read(partials, t), write(a.outs[0]!, out.dtype)],
        params: [nOut, chunks, floatBits(count)],
        workgroups: nOut,
      },
    ];
  };
}

/**
 * argmax / argmin along one axis: (value, index) pairs reduced in a workgroup tree. The order is
 * total (a NaN beats any number, then the better value, then the lower index), so the tree finds
 * the same element as the reference's left-to-right scan: the first NaN, else the first extreme.
 */
export function argReduction(op: 'argmax' | 'argmin'): KernelFactory<Attrs> {
  return (a) => {
    const x = a.inputs[0]!;
    const out = a.outputs[0]!;
    const nOut = sizeOf(out.shape);
    if (nOut === 0) return [];
    const axis = normalizeAxis(a.attrs.axis as number, x.shape.length, op);
    const s = split(x.shape, [axis]);
    const rk = s.keptShape.length;
    const t = x.dtype;
    const ty = wgslType(t);
    const cmp = op === 'argmax' ? '>' : '<';
    const nan = (v: string) => (t === 'float32' ? `isnan_(${v})` : 'false');
    // Is (bv, bi) before (av, ai)? Index 0xffffffff marks "nothing yet".
    const better = `fn better(av: ${ty}, ai: u32, bv: ${ty}, bi: u32) -> bool {
  if (bi == 0xffffffffu) { return false; }
  if (ai == 0xffffffffu) { return true; }
  let an = ${nan('av')};
  let bn = ${nan('bv')};
  if (an || bn) { return bn && (!an || bi < ai); }
  if (bv ${cmp} av) { return true; }
  return bv == av && bi < ai;
}
var<workgroup> wv: array<${ty}, ${WG}>;
var<workgroup> wi: array<u32, ${WG}>;`;
    const body = `${better}
${ENTRY(WG)} {
  let o = gid(wid, nwg);
  if (o >= P(0u)) { return; }
${unravelTo('base', 'o', rk, 2, 2 + rk)}
  var bv: ${ty} = ld0(base);
  var bi = 0xffffffffu;
  for (var k = lid; k < P(1u); k = k + ${WG}u) {
    let v = ld0(base + k * P(${2 + 2 * rk}u));
    if (better(bv, bi, v, k)) { bv = v; bi = k; }
  }
  wv[lid] = bv;
  wi[lid] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s && better(wv[lid], wi[lid], wv[lid + s], wi[lid + s])) {
      wv[lid] = wv[lid + s];
      wi[lid] = wi[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) { st1(o, i32(wi[0])); }
}`;
    return [
      {
        key: `${op}:k${rk}`,
        body,
        tensors: [read(a.ins[0]!, t), write(a.outs[0]!, 'int32')],
        params: [nOut, s.redShape[0]!, ...s.keptShape, ...s.keptStrides, s.redStrides[0]!],
        workgroups: nOut,
      },
    ];
  };
}
