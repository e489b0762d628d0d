import * as k from '../api/ops.js';
import { attr } from '../attrs.js';
import { toReshapeTarget, unbroadcast } from '../autodiff/unbroadcast.js';
import { DTYPE_INFO, DTYPES, type DType } from '../dtype.js';
import { invalidArgument, KilnError, shapeError } from '../errors.js';
import { broadcastIndex, type RefTensor, ravel, refTensor, unravel } from '../ref-tensor.js';
import {
  type Dim,
  formatShape,
  formatType,
  isConcrete,
  normalizeAxis,
  type Shape,
  shapesEqual,
  sizeOf,
  tryBroadcastShapes,
} from '../shape.js';
import { caseShapes, randomShape } from './case-shapes.js';
import {
  type CompositeOpDef,
  type ConformanceCase,
  defineComposite,
  defineOp,
  streamingCost,
} from './op-def.js';

const move = streamingCost(0);

/** Dimensions a gradient needs to know, or a clear error naming the op. */
function knownDims(shape: Shape, op: string): number[] {
  if (!isConcrete(shape))
    throw new KilnError(
      'unsupported',
      `the gradient of ${op} needs known dimensions, got ${formatShape(shape)}`,
    );
  return [...shape];
}

// ---------------------------------------------------------------- reshape

/** Resolves a reshape target (one -1 allowed) against an input shape. */
export function reshapeTarget(input: Shape, target: readonly number[]): Dim[] {
  const where = `reshape ${formatShape(input)} to [${target.join(',')}]`;
  const wild = target.filter((d) => d === -1).length;
  if (wild > 1 || target.some((d) => d < -1))
    throw invalidArgument(`${where}: at most one -1, other sizes >= 0`);
  const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  if (!isConcrete(input)) return target.map((d) => (d === -1 ? null : d));
  const total = sizeOf(input);
  if (wild === 1) {
    if (known === 0 || total % known !== 0) throw shapeError(`${where}: ${total} elements cannot fill it`);
    return target.map((d) => (d === -1 ? total / known : d));
  }
  if (known !== total) throw shapeError(`${where}: ${total} elements cannot fill ${known}`);
  return [...target];
}

export const reshape = defineOp({
  name: 'reshape',
  kind: 'layout',
  arity: 1,
  attrs: { shape: attr.ints },
  infer: ([x], { shape }) => [{ dtype: x!.dtype, shape: reshapeTarget(x!.shape, shape) }],
  reference: ([x], { shape }) => [
    { dtype: x!.dtype, shape: reshapeTarget(x!.shape, shape) as number[], data: x!.data.slice() },
  ],
  gradient: ({ inputs: [x], cotangents: [g] }) => [k.reshape(g!, toReshapeTarget(x!.shape))],
  cost: move,
  cases(rng) {
    return caseShapes(rng, 10).map((shape) => {
      const n = sizeOf(shape);
      const target = n > 1 && rng.bool() ? [-1, ...(n % 2 === 0 ? [2] : [1])] : [n];
      return { inputs: [{ dtype: rng.pick(DTYPES), shape }], attrs: { shape: target } };
    });
  },
});

// ---------------------------------------------------------------- transpose

function resolvePerm(perm: readonly number[] | null, rank: number): readonly number[] {
  const p = perm ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const sorted = [...p].sort((a, b) => a - b);
  if (p.length !== rank || sorted.some((v, i) => v !== i)) {
    throw invalidArgument(`transpose: [${p.join(',')}] is not a permutation of ${rank} axes`);
  }
  return p;
}

export const transpose = defineOp({
  name: 'transpose',
  kind: 'layout',
  arity: 1,
  attrs: { perm: attr.axes.default(null) },
  infer([x], { perm }) {
    const p = resolvePerm(perm, x!.shape.length);
    return [{ dtype: x!.dtype, shape: p.map((a) => x!.shape[a]!) }];
  },
  reference([x], { perm }) {
    const p = resolvePerm(perm, x!.shape.length);
    const out = refTensor(
      x!.dtype,
      p.map((a) => x!.shape[a]!),
    );
    for (let i = 0; i < out.data.length; i++) {
      const oc = unravel(i, out.shape);
      const ic = new Array<number>(p.length);
      p.forEach((a, d) => {
        ic[a] = oc[d]!;
      });
      out.data[i] = x!.data[ravel(ic, x!.shape)]!;
    }
    return [out];
  },
  gradient: ({ attrs: { perm }, inputs: [x], cotangents: [g] }) => {
    const p = resolvePerm(perm, x!.shape.length);
    const inverse = p.map((_, i) => p.indexOf(i));
    return [k.transpose(g!, inverse)];
  },
  cost: move,
  cases(rng) {
    return caseShapes(rng, 12).map((shape) => {
      const perm = shape.map((_, i) => i).sort(() => rng.next() - 0.5);
      return { inputs: [{ dtype: rng.pick(DTYPES), shape }], attrs: { perm: rng.bool(0.2) ? null : perm } };
    });
  },
});

// ---------------------------------------------------------------- broadcastTo

export const broadcastTo = defineOp({
  name: 'broadcastTo',
  kind: 'layout',
  arity: 1,
  attrs: { shape: attr.concreteShape },
  infer([x], { shape }) {
    const b = tryBroadcastShapes(x!.shape, shape);
    if (b === null || !shapesEqual(b, shape)) {
      throw shapeError(`broadcastTo: ${formatType(x!)} does not broadcast to ${formatShape(shape)}`);
    }
    return [{ dtype: x!.dtype, shape }];
  },
  reference([x], { shape }) {
    const out = refTensor(x!.dtype, shape);
    const idx = broadcastIndex(shape, x!.shape);
    for (let i = 0; i < out.data.length; i++) out.data[i] = x!.data[idx(i)]!;
    return [out];
  },
  gradient: ({ inputs: [x], cotangents: [g] }) => [unbroadcast(g!, x!.shape)],
  cost: move,
  cases(rng) {
    return caseShapes(rng, 10).map((shape) => {
      const src = shape.slice(rng.int(0, shape.length)).map((d) => (rng.bool(0.4) ? 1 : d));
      return { inputs: [{ dtype: rng.pick(DTYPES), shape: src }], attrs: { shape } };
    });
  },
});

// ---------------------------------------------------------------- slice

/** Resolves slice sizes (-1 = to the end) and checks bounds where the input is known. */
export function sliceShape(input: Shape, begin: readonly number[], size: readonly number[]): Dim[] {
  const where = `slice ${formatShape(input)} at [${begin.join(',')}] size [${size.join(',')}]`;
  if (begin.length !== input.length || size.length !== input.length) {
    throw invalidArgument(`${where}: begin and size need one entry per dimension`);
  }
  return input.map((d, i) => {
    const b = begin[i]!;
    const s = size[i]!;
    if (b < 0 || s < -1) throw invalidArgument(`${where}: begin must be >= 0 and size >= -1`);
    if (d === null) return s === -1 ? null : s;
    if (b > d || (s !== -1 && b + s > d)) throw shapeError(`${where}: out of bounds in dimension ${i}`);
    return s === -1 ? d - b : s;
  });
}

export const slice = defineOp({
  name: 'slice',
  kind: 'layout',
  arity: 1,
  attrs: { begin: attr.ints, size: attr.ints },
  infer: ([x], { begin, size }) => [{ dtype: x!.dtype, shape: sliceShape(x!.shape, begin, size) }],
  reference([x], { begin, size }) {
    const out = refTensor(x!.dtype, sliceShape(x!.shape, begin, size) as number[]);
    for (let i = 0; i < out.data.length; i++) {
      const c = unravel(i, out.shape).map((v, d) => v + begin[d]!);
      out.data[i] = x!.data[ravel(c, x!.shape)]!;
    }
    return [out];
  },
  gradient: ({ attrs: { begin }, inputs: [x], outputs: [y], cotangents: [g] }) => {
    const dims = knownDims(x!.shape, 'slice');
    return [
      k.pad(
        g!,
        dims.map((d, i) => [begin[i]!, d - begin[i]! - (y!.shape[i] as number)] as const),
      ),
    ];
  },
  cost: move,
  cases(rng) {
    return caseShapes(rng, 12).map((shape) => {
      const begin = shape.map((d) => rng.int(0, d));
      const size = shape.map((d, i) => (rng.bool(0.3) ? -1 : rng.int(0, d - begin[i]!)));
      return { inputs: [{ dtype: rng.pick(DTYPES), shape }], attrs: { begin, size } };
    });
  },
});

// ---------------------------------------------------------------- concat

export const concat = defineOp({
  name: 'concat',
  kind: 'layout',
  arity: { min: 1 },
  attrs: { axis: attr.int },
  infer(inputs, { axis }) {
    const first = inputs[0]!;
    const a = normalizeAxis(axis, first.shape.length, 'concat');
    let total: Dim = 0;
    for (const t of inputs) {
      const ok =
        t.dtype === first.dtype &&
        t.shape.length === first.shape.length &&
        t.shape.every((d, i) => i === a || d === null || first.shape[i] === null || d === first.shape[i]);
      if (!ok)
        throw shapeError(`concat: ${formatType(t)} does not match ${formatType(first)} outside axis ${axis}`);
      total = total === null || t.shape[a] === null ? null : total + t.shape[a]!;
    }
    return [{ dtype: first.dtype, shape: first.shape.map((d, i) => (i === a ? total : d)) }];
  },
  reference(inputs, { axis }) {
    const a = normalizeAxis(axis, inputs[0]!.shape.length, 'concat');
    const shape = inputs[0]!.shape.map((d, i) => (i === a ? inputs.reduce((n, t) => n + t.shape[a]!, 0) : d));
    const out = refTensor(inputs[0]!.dtype, shape);
    let offset = 0;
    for (const t of inputs) {
      for (let i = 0; i < t.data.length; i++) {
        const c = unravel(i, t.shape);
        c[a]! += offset;
        out.data[ravel(c, shape)] = t.data[i]!;
      }
      offset += t.shape[a]!;
    }
    return [out];
  },
  gradient: ({ attrs: { axis }, inputs, cotangents: [g] }) => {
    const a = normalizeAxis(axis, g!.shape.length, 'concat');
    let offset = 0;
    return inputs.map((t) => {
      const size = knownDims([t.shape[a]!], 'concat')[0]!;
      const begin = g!.shape.map((_, i) => (i === a ? offset : 0));
      offset += size;
      return k.slice(
        g!,
        begin,
        g!.shape.map((_, i) => (i === a ? size : -1)),
      );
    });
  },
  cost: move,
  cases(rng) {
    return caseShapes(rng, 12)
      .filter((s) => s.length > 0)
      .map((shape) => {
        const axis = rng.int(0, shape.length - 1);
        const dtype = rng.pick(DTYPES);
        const parts = Array.from({ length: rng.int(1, 4) }, () => ({
          dtype,
          shape: shape.map((d, i) => (i === axis ? rng.int(0, 3) : d)),
        }));
        return { inputs: parts, attrs: { axis: rng.bool() ? axis : axis - shape.length } };
      });
  },
});

// ---------------------------------------------------------------- pad

export const pad = defineOp({
  name: 'pad',
  kind: 'layout',
  arity: 1,
  attrs: { paddings: attr.pairs, value: attr.float.default(0) },
  infer([x], { paddings }) {
    if (paddings.length !== x!.shape.length) {
      throw invalidArgument(
        `pad: ${paddings.length} paddings for ${formatType(x!)}; need one pair per dimension`,
      );
    }
    return [
      {
        dtype: x!.dtype,
        shape: x!.shape.map((d, i) => (d === null ? null : d + paddings[i]![0] + paddings[i]![1])),
      },
    ];
  },
  reference([x], { paddings, value }) {
    const shape = x!.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
    const out = refTensor(x!.dtype, shape);
    out.data.fill(DTYPE_INFO[x!.dtype].round(value));
    for (let i = 0; i < x!.data.length; i++) {
      const c = unravel(i, x!.shape).map((v, d) => v + paddings[d]![0]);
      out.data[ravel(c, shape)] = x!.data[i]!;
    }
    return [out];
  },
  gradient: ({ attrs: { paddings }, inputs: [x], cotangents: [g] }) => [
    k.slice(
      g!,
      paddings.map(([before]) => before),
      x!.shape.map((d) => d ?? -1),
    ),
  ],
  cost: move,
  cases(rng) {
    return caseShapes(rng, 10).map((shape) => ({
      inputs: [{ dtype: rng.pick(['float32', 'int32'] as const), shape }],
      attrs: {
        paddings: shape.map(() => [rng.int(0, 2), rng.int(0, 2)] as const),
        value: rng.pick([0, 1.5, -2]),
      },
    }));
  },
});

// ---------------------------------------------------------------- gather, oneHot

/**
 * gather(params, indices, axis): numpy's `take`. An index outside [0, size) selects zeros, on
 * every device: a GPU kernel cannot throw, so no device may.
 */
export const gather = defineOp({
  name: 'gather',
  kind: 'layout',
  arity: 2,
  attrs: { axis: attr.int.default(0) },
  infer([p, idx], { axis }) {
    if (idx!.dtype !== 'int32') throw shapeError(`gather: indices have type ${formatType(idx!)}; need int32`);
    const a = normalizeAxis(axis, p!.shape.length, 'gather');
    return [{ dtype: p!.dtype, shape: [...p!.shape.slice(0, a), ...idx!.shape, ...p!.shape.slice(a + 1)] }];
  },
  reference([p, idx], { axis }) {
    const a = normalizeAxis(axis, p!.shape.length, 'gather');
    const shape = [...p!.shape.slice(0, a), ...idx!.shape, ...p!.shape.slice(a + 1)];
    const out = refTensor(p!.dtype, shape);
    const r = idx!.shape.length;
    for (let i = 0; i < out.data.length; i++) {
      const c = unravel(i, shape);
      const k = idx!.data[ravel(c.slice(a, a + r), idx!.shape)]!;
      if (k < 0 || k >= p!.shape[a]!) continue;
      out.data[i] = p!.data[ravel([...c.slice(0, a), k, ...c.slice(a + r)], p!.shape)]!;
    }
    return [out];
  },
  // Indices take no gradient; params would need a scatter-add op, which kiln does not have yet:
  // refuse rather than return a wrong (zero) gradient.
  gradient: () => {
    throw new KilnError(
      'unsupported',
      'the gradient of gather with respect to its params needs scatter-add, which kiln does not have yet',
    );
  },
  cost: move,
  cases(rng) {
    return caseShapes(rng, 12)
      .filter((s) => s.length > 0)
      .map((shape) => {
        const axis = rng.int(0, shape.length - 1);
        return {
          inputs: [
            { dtype: rng.pick(DTYPES), shape },
            {
              dtype: 'int32' as DType,
              shape: randomShape(rng, 2),
              domain: { range: [-1, shape[axis]!] as const },
            },
          ],
          attrs: { axis },
        };
      });
  },
});

const oneHotAttrs = {
  depth: attr.int,
  onValue: attr.float.default(1),
  offValue: attr.float.default(0),
  dtype: attr.dtype.default('float32'),
};

export const oneHot: CompositeOpDef<typeof oneHotAttrs> = defineComposite({
  name: 'oneHot',
  kind: 'layout',
  arity: 1,
  attrs: oneHotAttrs,
  infer([idx], { depth, dtype }) {
    if (idx!.dtype !== 'int32') throw shapeError(`oneHot: indices have type ${formatType(idx!)}; need int32`);
    if (depth < 0) throw invalidArgument(`oneHot: depth ${depth} must be >= 0`);
    return [{ dtype, shape: [...idx!.shape, depth] }];
  },
  reference([idx], { depth, onValue, offValue, dtype }) {
    const out = refTensor(dtype, [...idx!.shape, depth]);
    const round = DTYPE_INFO[dtype].round;
    for (let i = 0; i < out.data.length; i++) {
      out.data[i] = round(idx!.data[Math.floor(i / depth)] === i % depth ? onValue : offValue);
    }
    return [out];
  },
  gradient: { none: 'its input is indices' },
  // where(indices[..., None] == [0, 1, ..., depth - 1], on, off): an index out of range matches none.
  decompose: ({ attrs: { depth, onValue, offValue, dtype }, inputs: [indices] }) => {
    type T = typeof indices & object;
    const ctx = indices!.context;
    const data = Int32Array.from({ length: depth }, (_, i) => i);
    const iota = ctx.constant({ dtype: 'int32', shape: [depth], data }) as T;
    const scalar = (v: number) => {
      const one = DTYPE_INFO[dtype].create(1);
      one[0] = DTYPE_INFO[dtype].round(v);
      return ctx.constant({ dtype, shape: [], data: one }) as T;
    };
    const mask = k.equal(k.reshape(indices!, toReshapeTarget([...indices!.shape, 1])), iota);
    return [k.where(mask, scalar(onValue), scalar(offValue))];
  },
  cost: move,
  cases(rng) {
    const cases: ConformanceCase<{ depth: number; onValue: number; offValue: number; dtype: DType }>[] = [];
    for (const shape of caseShapes(rng, 8)) {
      const depth = rng.int(0, 6);
      cases.push({
        inputs: [{ dtype: 'int32', shape, domain: { range: [-1, depth] } }],
        attrs: { depth, onValue: rng.pick([1, 0.9]), offValue: rng.pick([0, -1]), dtype: 'float32' },
      });
    }
    return cases;
  },
});

export type { RefTensor };
