import { normalizeAxis, sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY } from '../shader.js';
import { treeReduce } from '../wgsl/workgroup.js';
import { type KernelFactory, read, write } from './kernel.js';

type Attrs = Readonly<Record<string, unknown>>;
const WG = 64;

const REDUCERS = `${treeReduce('wmax', 'f32', (a, b) => `fmax_(${a}, ${b})`, WG)}
${treeReduce('wsum', 'f32', (a, b) => `(${a} + ${b})`, WG)}`;

/**
 * softmax / logSoftmax: one workgroup per lane along the axis (element j of lane L at
 * base + j * inner), three passes over the lane: the max, the sum of exp(x - max), the output.
 * The max propagates NaN, so a NaN poisons its lane exactly as in the reference.
 */
export function softmaxKernel(log: boolean): KernelFactory<Attrs> {
  return (a): Dispatch[] => {
    const x = a.inputs[0]!;
    if (sizeOf(x.shape) === 0) return [];
    const axis = normalizeAxis(a.attrs.axis as number, x.shape.length, log ? 'logSoftmax' : 'softmax');
    const n = x.shape[axis]!;
    const inner = sizeOf(x.shape.slice(axis + 1));
    const lanes = sizeOf(x.shape) / n;
    const out = log ? 'z - ls' : 'fexp_(z) / s';
    const body = `${REDUCERS}
${ENTRY(WG)} {
  let l = gid(wid, nwg);
  if (l >= P(0u)) { return; }
  let n = P(1u);
  let inner = P(2u);
  let base = (l / inner) * n * inner + l % inner;
  var m = -inf_();
  for (var j = lid; j < n; j = j + ${WG}u) { m = fmax_(m, ld0(base + j * inner)); }
  m = wmax(m, lid);
  var s = 0.0;
  for (var j = lid; j < n; j = j + ${WG}u) { s = s + fexp_(ld0(base + j * inner) - m); }
  s = wsum(s, lid);
  let ls = flog_(s);
  for (var j = lid; j < n; j = j + ${WG}u) {
    let z = ld0(base + j * inner) - m;
    st1(base + j * inner, ${out});
  }
}`;
    return [
      {
        key: log ? 'logsoftmax' : 'softmax',
        body,
        tensors: [read(a.ins[0]!, 'float32'), write(a.outs[0]!, 'float32')],
        params: [lanes, n, inner],
        workgroups: lanes,
      },
    ];
  };
}

/**
 * The cross-entropy losses, a workgroup per row of the last axis: max, log-sum-exp, then the loss
 * as the reference writes it, labels_k * ((m - x_k) + log s), so nothing overflows.
 */
export function crossEntropy(sparse: boolean): KernelFactory<Attrs> {
  return (a): Dispatch[] => {
    const x = a.inputs[0]!;
    const rows = sizeOf(a.outputs[0]!.shape);
    if (rows === 0) return [];
    const k = x.shape[x.shape.length - 1]!;
    const loss = sparse
      ? `let label = ld1(r);
  if (lid == 0u) {
    if (label < 0 || label >= i32(k)) { st2(r, nan_()); } else { st2(r, m - ld0(base + u32(label)) + ls); }
  }`
      : `var t = 0.0;
  for (var j = lid; j < k; j = j + ${WG}u) { t = t + ld1(base + j) * (m - ld0(base + j) + ls); }
  t = wsum(t, lid);
  if (lid == 0u) { st2(r, t); }`;
    const body = `${REDUCERS}
${ENTRY(WG)} {
  let r = gid(wid, nwg);
  if (r >= P(0u)) { return; }
  let k = P(1u);
  let base = r * k;
  var m = -inf_();
  for (var j = lid; j < k; j = j + ${WG}u) { m = fmax_(m, ld0(base + j)); }
  m = wmax(m, lid);
  var s = 0.0;
  for (var j = lid; j < k; j = j + ${WG}u) { s = s + fexp_(ld0(base + j) - m); }
  s = wsum(s, lid);
  let ls = flog_(s);
  ${loss}
}`;
    return [
      {
        key: sparse ? 'sparse-xent' : 'xent',
        body,
        tensors: [
          read(a.ins[0]!, 'float32'),
          read(a.ins[1]!, sparse ? 'int32' : 'float32'),
          write(a.outs[0]!, 'float32'),
        ],
        params: [rows, k],
        workgroups: rows,
      },
    ];
  };
}
