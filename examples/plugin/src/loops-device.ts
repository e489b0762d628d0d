import {
  type DevicePlugin,
  DTYPE_INFO,
  HostDevice,
  KERNEL_ABI_VERSION,
  type KernelFactory,
  type KernelTable,
  REFERENCE_KERNELS,
  referenceKernel,
} from 'kiln-tensor/plugin';

/**
 * A third-party kiln device in plain JavaScript loops: it claims the primitives and nothing else,
 * so softmax, the losses, relu, fused groups, convolutions and the rest reach it as their
 * decompositions. The arithmetic that training spends its time in (elementwise ops, reductions,
 * matmul) has kernels of its own here; the other primitives start from the op's reference
 * implementation (`REFERENCE_KERNELS`), to be replaced when a profile says so.
 */

type Shape = readonly number[];

const stridesOf = (shape: Shape): number[] => {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
};

/** For each element of `out`, the index of the element of a broadcast input of shape `input`. */
function broadcastMap(out: Shape, input: Shape): Int32Array | null {
  if (out.length === input.length && out.every((d, i) => d === input[i])) return null;
  const size = out.reduce((a, b) => a * b, 1);
  const inStrides = stridesOf(input);
  const map = new Int32Array(size);
  const offset = out.length - input.length;
  for (let i = 0; i < size; i++) {
    let rest = i;
    let at = 0;
    for (let d = out.length - 1; d >= 0; d--) {
      const coord = rest % out[d]!;
      rest = Math.floor(rest / out[d]!);
      const k = d - offset;
      if (k >= 0 && input[k] !== 1) at += coord * inStrides[k]!;
    }
    map[i] = at;
  }
  return map;
}

/** An elementwise kernel from a scalar function; results are stored in the output's dtype. */
function elementwise(
  fn: (...xs: number[]) => number,
  intFn?: (...xs: number[]) => number,
): KernelFactory<unknown> {
  return ({ inputs, outputs }) => {
    const out = outputs[0]!;
    const maps = inputs.map((t) => broadcastMap(out.shape, t.shape));
    const f = intFn && inputs.some((t) => t.dtype === 'int32') ? intFn : fn;
    const store = DTYPE_INFO[out.dtype].round;
    const args = new Array<number>(inputs.length);
    return (ins, [y]) => {
      for (let i = 0; i < y!.length; i++) {
        for (let k = 0; k < ins.length; k++) args[k] = ins[k]![maps[k]?.[i] ?? i]!;
        y![i] = store(f(...args));
      }
    };
  };
}

/** Round half to even, as IEEE 754 and numpy round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const bool = (b: boolean) => (b ? 1 : 0);

/** A reduction over `axes` (null: all), keeping reduced dimensions as 1s or dropping them. */
function reduction(
  init: number,
  step: (acc: number, x: number) => number,
  intStep = step,
): KernelFactory<unknown> {
  return ({ attrs, inputs, outputs }) => {
    const { axes } = attrs as { axes: number[] | null };
    const shape = inputs[0]!.shape;
    const reduced = (axes ?? shape.map((_, i) => i)).map((a) => (a < 0 ? a + shape.length : a));
    const kept = shape.map((_, i) => i).filter((i) => !reduced.includes(i));
    const strides = stridesOf(shape);
    const size = shape.reduce((a, b) => a * b, 1);
    // Which output element each input element reduces into, worked out once.
    const into = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      let o = 0;
      for (const d of kept) o = o * shape[d]! + (Math.floor(i / strides[d]!) % shape[d]!);
      into[i] = o;
    }
    const f = inputs[0]!.dtype === 'int32' ? intStep : step;
    const store = DTYPE_INFO[outputs[0]!.dtype].round;
    return ([x], [y]) => {
      const acc = new Float64Array(y!.length).fill(init);
      for (let i = 0; i < x!.length; i++) acc[into[i]!] = f(acc[into[i]!]!, x![i]!);
      for (let o = 0; o < y!.length; o++) y![o] = store(acc[o]!);
    };
  };
}

const nanAware = (pick: (a: number, b: number) => number) => (a: number, b: number) =>
  Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : pick(a, b);

/** Matrix product of two rank-2 operands (either transposed); batched products use the reference. */
const matmul: KernelFactory<unknown> = (node) => {
  const { transposeA, transposeB } = node.attrs as { transposeA: boolean; transposeB: boolean };
  const [a, b] = node.inputs;
  if (a!.shape.length !== 2 || b!.shape.length !== 2) return referenceKernel('matmul')(node);
  const [m, k] = transposeA ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
  const n = transposeB ? b!.shape[0]! : b!.shape[1]!;
  // Element (i, p) of A and (p, j) of B, for either layout.
  const [ai, ap] = transposeA ? [1, m] : [k, 1];
  const [bp, bj] = transposeB ? [1, k] : [n, 1];
  const acc = new Float64Array(n);
  return ([x, w], [y]) => {
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const xv = x![i * ai + p * ap]!;
        for (let j = 0; j < n; j++) acc[j]! += xv * w![p * bp + j * bj]!;
      }
      y!.set(acc, i * n);
    }
  };
};

/** int32 division truncates toward zero and wraps; division by zero gives 0, as on every device. */
const intDiv = (a: number, b: number) => (b === 0 ? 0 : Math.trunc(a / b) | 0);

/** Every primitive: loops for the arithmetic, references for the rest. */
export const LOOP_KERNELS: KernelTable = {
  ...REFERENCE_KERNELS,
  exp: elementwise(Math.exp),
  log: elementwise(Math.log),
  sqrt: elementwise(Math.sqrt),
  sin: elementwise(Math.sin),
  cos: elementwise(Math.cos),
  floor: elementwise(Math.floor),
  round: elementwise(roundHalfEven),
  add: elementwise(
    (a, b) => a! + b!,
    (a, b) => (a! + b!) | 0,
  ),
  mul: elementwise(
    (a, b) => a! * b!,
    (a, b) => Math.imul(a!, b!),
  ),
  div: elementwise(
    (a, b) => a! / b!,
    (a, b) => intDiv(a!, b!),
  ),
  pow: elementwise(Math.pow),
  maximum: elementwise(Math.max),
  minimum: elementwise(Math.min),
  equal: elementwise((a, b) => bool(a === b)),
  less: elementwise((a, b) => bool(a! < b!)),
  where: elementwise((c, a, b) => (c ? a! : b!)),
  cast: elementwise((x) => x!),
  sum: reduction(
    0,
    (s, x) => s + x,
    (s, x) => (s + x) | 0,
  ),
  prod: reduction(1, (s, x) => s * x, Math.imul),
  max: reduction(Number.NEGATIVE_INFINITY, nanAware(Math.max)),
  min: reduction(Number.POSITIVE_INFINITY, nanAware(Math.min)),
  matmul,
};

export interface LoopsOptions {
  readonly name?: string;
}

/** The device: kiln's host-device boilerplate with the kernels above. */
export class LoopsDevice extends HostDevice {
  constructor(options: LoopsOptions = {}) {
    super({ name: options.name ?? 'loops:0', kind: 'loops', kernels: LOOP_KERNELS });
  }
}

/** What `kiln worker --device` and `ThreadPool.create({ device: { module } })` load. */
export const plugin: DevicePlugin<LoopsOptions> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'loops',
  create: (options) => new LoopsDevice(options),
};
