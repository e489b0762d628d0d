import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { unbroadcast } from '../autodiff/unbroadcast.js';
import { roundFloat32 } from '../dtype.js';
import { shapeError } from '../errors.js';
import { broadcastIndex, refTensor } from '../ref-tensor.js';
import { type Dim, formatType, type Shape, tryBroadcastShapes } from '../shape.js';
import { broadcastPartner } from './case-shapes.js';
import { type ConformanceCase, defineOp, elementBytes } from './op-def.js';

interface MatmulAttrs {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
}

/** Splits a matmul operand into (batch dims, rows, cols) after the optional transpose. */
function operand(shape: Shape, transpose: boolean): { batch: Shape; rows: Dim; cols: Dim } {
  const r = shape.length;
  const [rows, cols] = [shape[r - 2]!, shape[r - 1]!];
  return { batch: shape.slice(0, r - 2), rows: transpose ? cols : rows, cols: transpose ? rows : cols };
}

export function matmulShape(a: Shape, b: Shape, attrs: MatmulAttrs): Dim[] {
  const A = operand(a, attrs.transposeA);
  const B = operand(b, attrs.transposeB);
  const batch = tryBroadcastShapes(A.batch, B.batch);
  if (batch === null) throw shapeError('batch dimensions do not broadcast');
  return [...batch, A.rows, B.cols];
}

export const matmul = defineOp({
  name: 'matmul',
  kind: 'contraction',
  arity: 2,
  attrs: { transposeA: attr.bool.default(false), transposeB: attr.bool.default(false) },
  infer([a, b], attrs) {
    const both = `${formatType(a!)} and ${formatType(b!)}`;
    if (a!.dtype !== b!.dtype || a!.dtype === 'bool')
      throw shapeError(`matmul: operands ${both} must share a numeric dtype`);
    if (a!.shape.length < 2 || b!.shape.length < 2)
      throw shapeError(`matmul: operands ${both} need rank >= 2`);
    const A = operand(a!.shape, attrs.transposeA);
    const B = operand(b!.shape, attrs.transposeB);
    if (A.cols !== null && B.rows !== null && A.cols !== B.rows) {
      throw shapeError(`matmul: contracted dimensions differ (${A.cols} vs ${B.rows}) for ${both}`);
    }
    if (tryBroadcastShapes(A.batch, B.batch) === null) {
      throw shapeError(`matmul: batch dimensions of ${both} do not broadcast`);
    }
    return [{ dtype: a!.dtype, shape: matmulShape(a!.shape, b!.shape, attrs) }];
  },
  reference([a, b], attrs) {
    const outShape = matmulShape(a!.shape, b!.shape, attrs) as number[];
    const out = refTensor(a!.dtype, outShape);
    const r = outShape.length;
    const [m, n] = [outShape[r - 2]!, outShape[r - 1]!];
    const k = attrs.transposeA ? a!.shape[a!.shape.length - 2]! : a!.shape[a!.shape.length - 1]!;
    const batchShape = outShape.slice(0, r - 2);
    const batches = batchShape.reduce((x, y) => x * y, 1);
    const aBatch = broadcastIndex(batchShape, a!.shape.slice(0, -2));
    const bBatch = broadcastIndex(batchShape, b!.shape.slice(0, -2));
    const [ar, ac] = a!.shape.slice(-2) as [number, number];
    const [br, bc] = b!.shape.slice(-2) as [number, number];
    const isInt = a!.dtype === 'int32';
    for (let t = 0; t < batches; t++) {
      const aOff = aBatch(t) * ar * ac;
      const bOff = bBatch(t) * br * bc;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++) {
            const x = a!.data[aOff + (attrs.transposeA ? p * ac + i : i * ac + p)]!;
            const y = b!.data[bOff + (attrs.transposeB ? j * bc + p : p * bc + j)]!;
            acc = isInt ? (acc + Math.imul(x, y)) | 0 : acc + x * y;
          }
          out.data[(t * m + i) * n + j] = isInt ? acc : roundFloat32(acc);
        }
      }
    }
    return [out];
  },
  cost([a, b], [out]) {
    const k = a!.shape[a!.shape.length - 1]!;
    const n = out!.shape.reduce((x, y) => x * y, 1);
    return { flops: 2 * n * k, bytes: elementBytes([a!, b!, out!]) };
  },
  cases(rng) {
    const cases: ConformanceCase<MatmulAttrs>[] = [];
    const dims = [0, 1, 2, 3, 5, 8, 17];
    for (let c = 0; c < 24; c++) {
      const [m, k, n] = [rng.pick(dims), rng.pick(dims), rng.pick(dims)];
      const batch = c < 8 ? [] : Array.from({ length: rng.int(1, 2) }, () => rng.int(1, 3));
      const attrs = { transposeA: rng.bool(), transposeB: rng.bool() };
      const a = [...batch, ...(attrs.transposeA ? [k, m] : [m, k])];
      const b = [...broadcastPartner(rng, batch), ...(attrs.transposeB ? [n, k] : [k, n])];
      const dtype = c % 6 === 5 ? 'int32' : 'float32';
      cases.push({
        inputs: [
          { dtype, shape: a },
          { dtype, shape: b },
        ],
        attrs,
      });
    }
    return cases;
  },
  // C = op(A) op(B): each operand's cotangent is the other times g, transposed to match, then
  // summed over broadcast batch dimensions.
  gradient: ({ attrs: { transposeA: ta, transposeB: tb }, inputs: [a, b], cotangents: [g] }) => {
    const mm = k.matmul;
    const da = ta ? mm(b!, g!, { transposeA: tb, transposeB: true }) : mm(g!, b!, { transposeB: !tb });
    const db = tb ? mm(g!, a!, { transposeA: true, transposeB: ta }) : mm(a!, g!, { transposeA: !ta });
    return [unbroadcast(da, a!.shape), unbroadcast(db, b!.shape)];
  },
  tolerance: ([a], attrs) => Math.max(1, a!.shape[a!.shape.length - (attrs.transposeA ? 2 : 1)]!),
});
