import type { DType, FusedAttrs, HostArray } from '@kiln/ir';
import { api, compileModule, PAGE, type WasmMemory } from './api.js';
import { assemble, FunctionBody, I32, type Local, V128, type V128Op } from './assembler.js';

/**
 * A fusion group as a WebAssembly SIMD loop, four float32 lanes at a time, generated from the
 * program when its kernel is made. WebAssembly reads only its own memory, so the group streams
 * through it in chunks of CHUNK values: each input's chunk is copied in (TypedArray.set, a
 * memcpy), the loop computes every step of four elements in registers before the next four, and
 * each output's chunk is copied out. The chunks stay in the first levels of cache, so the copies
 * cost far less than the scalar loop they replace; an output may share an input's memory, since
 * a chunk is read in whole before it is written.
 *
 * Every step is one IEEE single-precision operation, which is what the TypeScript loop's
 * Math.fround of each step gives too, so the results are the same bits (NaNs aside, whose sign
 * and payload JavaScript does not keep). Booleans live as lane masks (all ones for true). Groups
 * with a step no instruction computes exactly as the reference does (exp, log, tanh, sigmoid, sin,
 * cos, pow, rsqrt: the reference computes those in float64), with int32 or bool inputs or
 * outputs, or with inputs other than whole arrays and scalars, stay in the TypeScript loop.
 */
const CHUNK = 4096;

/** Below this many values a call and the copies cost about what the lanes save. */
export const WASM_FUSED_MIN = 1024;

type Kind = 'float' | 'mask';

/** How a step computes its lanes from its arguments' locals, leaving them on the stack. */
interface Lowering {
  readonly args: readonly Kind[];
  readonly result: Kind;
  readonly emit: (f: FunctionBody, a: readonly Local[]) => void;
}

const lanewise = (op: V128Op, args: readonly Kind[], result: Kind): Lowering => ({
  args,
  result,
  emit: (f, a) => {
    for (const x of a) f.get(x);
    f.v128(op);
  },
});
const floatUnary = (op: V128Op) => lanewise(op, ['float'], 'float');
const floatBinary = (op: V128Op) => lanewise(op, ['float', 'float'], 'float');
const compare = (op: V128Op) => lanewise(op, ['float', 'float'], 'mask');
const logical = (op: V128Op) => lanewise(op, ['mask', 'mask'], 'mask');

/** The ops the loop computes, each exactly as the TypeScript expression table does. */
const LOWERINGS: Readonly<Record<string, Lowering>> = {
  neg: floatUnary('f32x4.neg'),
  abs: floatUnary('f32x4.abs'),
  sqrt: floatUnary('f32x4.sqrt'),
  floor: floatUnary('f32x4.floor'),
  ceil: floatUnary('f32x4.ceil'),
  round: floatUnary('f32x4.nearest'), // halves to even
  add: floatBinary('f32x4.add'),
  sub: floatBinary('f32x4.sub'),
  mul: floatBinary('f32x4.mul'),
  div: floatBinary('f32x4.div'),
  maximum: floatBinary('f32x4.max'), // Math.max: NaN wins, +0 above -0
  minimum: floatBinary('f32x4.min'),
  equal: compare('f32x4.eq'),
  notEqual: compare('f32x4.ne'),
  less: compare('f32x4.lt'),
  lessEqual: compare('f32x4.le'),
  greater: compare('f32x4.gt'),
  greaterEqual: compare('f32x4.ge'),
  logicalAnd: logical('v128.and'),
  logicalOr: logical('v128.or'),
  logicalXor: logical('v128.xor'),
  logicalNot: lanewise('v128.not', ['mask'], 'mask'),
  isNaN: { args: ['float'], result: 'mask', emit: (f, [x]) => f.get(x!).get(x!).v128('f32x4.ne') },
  square: { args: ['float'], result: 'float', emit: (f, [x]) => f.get(x!).get(x!).v128('f32x4.mul') },
  reciprocal: {
    args: ['float'],
    result: 'float',
    emit: (f, [x]) => f.f32x4Const(1).get(x!).v128('f32x4.div'),
  },
  // x > 0 || x !== x ? x : 0 (NaN passes, -0 becomes +0).
  relu: {
    args: ['float'],
    result: 'float',
    emit: (f, [x]) =>
      f
        .get(x!)
        .f32x4Const(0)
        .get(x!)
        .f32x4Const(0)
        .v128('f32x4.gt')
        .get(x!)
        .get(x!)
        .v128('f32x4.ne')
        .v128('v128.or')
        .v128('v128.bitselect'),
  },
  // Math.sign: 1 above zero, -1 below, the value itself otherwise (±0, NaN).
  sign: {
    args: ['float'],
    result: 'float',
    emit: (f, [x]) =>
      f
        .f32x4Const(1)
        .f32x4Const(-1)
        .get(x!)
        .get(x!)
        .f32x4Const(0)
        .v128('f32x4.lt')
        .v128('v128.bitselect')
        .get(x!)
        .f32x4Const(0)
        .v128('f32x4.gt')
        .v128('v128.bitselect'),
  },
};

/** cast between float32 and bool (x !== 0 is true for NaN, as the expression table has it). */
function castLowering(from: Kind, to: Kind): Lowering {
  if (from === to) return { args: [from], result: to, emit: (f, [x]) => f.get(x!) };
  return from === 'mask'
    ? { args: ['mask'], result: 'float', emit: (f, [x]) => f.get(x!).f32x4Const(1).v128('v128.and') }
    : { args: ['float'], result: 'mask', emit: (f, [x]) => f.get(x!).f32x4Const(0).v128('f32x4.ne') };
}

const KIND: Partial<Record<DType, Kind>> = { float32: 'float', bool: 'mask' };

/** This thread's memory, shared by every fused loop on it (kernels run one at a time). */
class ChunkMemory {
  readonly memory: WasmMemory;
  f32: Float32Array;

  constructor() {
    this.memory = new api!.Memory({ initial: 1 });
    this.f32 = new Float32Array(this.memory.buffer);
  }

  reserve(bytes: number): Float32Array {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      this.memory.grow(Math.ceil((bytes - have) / PAGE));
      this.f32 = new Float32Array(this.memory.buffer);
    }
    return this.f32;
  }
}
let chunkMemory: ChunkMemory | undefined;

/** A group's loop: runs the program over whole arrays (and scalars) of float32 values. */
export type WasmFusedRun = (ins: readonly HostArray[], outs: readonly HostArray[]) => void;

/**
 * The loop for a program over `dtypes` (its slots' dtypes, inputs first) whose inputs are whole
 * arrays of the output's size, or one value where `scalar` says so; null where the program has a
 * step, a dtype or an input this loop does not take.
 */
export function wasmFusedLoop(
  attrs: FusedAttrs,
  dtypes: readonly DType[],
  scalar: readonly boolean[],
): WasmFusedRun | null {
  const inputs = scalar.length;
  const kinds = dtypes.map((d) => KIND[d]);
  if (kinds.slice(0, inputs).some((k) => k !== 'float')) return null;
  if (attrs.outputs.some((o) => kinds[o] !== 'float')) return null;
  const lowerings: Lowering[] = [];
  for (const [k, step] of attrs.program.entries()) {
    const argKinds = step[1].map((a) => kinds[a]);
    const out = kinds[inputs + k];
    const lowering =
      step[0] === 'cast'
        ? argKinds[0] && out && castLowering(argKinds[0], out)
        : step[0] === 'where'
          ? out && { args: ['mask', out, out] as Kind[], result: out, emit: whereLanes }
          : LOWERINGS[step[0]];
    if (!lowering || lowering.result !== out || argKinds.some((kind) => kind === undefined)) return null;
    lowerings.push(lowering);
  }
  const streamed = scalar.flatMap((s, i) => (s ? [] : [i]));
  const streams = streamed.length + attrs.outputs.length;
  // Memory: one chunk per streamed input, then one per output, then the scalars.
  const chunkAt = (s: number) => s * CHUNK * 4;
  const scalarAt = (i: number) => chunkAt(streams) + 4 * i;
  const f = new FunctionBody(1); // (bytes): the chunk's length in bytes, a multiple of 16
  const slots = dtypes.map(() => f.local(V128));
  const at = f.local(I32);
  scalar.forEach((s, i) => {
    if (s) f.i32(0).load32Splat(scalarAt(i)).set(slots[i]!);
  });
  f.i32(0).set(at);
  f.doWhile(() => {
    streamed.forEach((i, s) => {
      f.get(at).v128Load(chunkAt(s)).set(slots[i]!);
    });
    lowerings.forEach((lowering, k) => {
      const args = attrs.program[k]![1].map((a, i) => as(f, slots[a]!, kinds[a]!, lowering.args[i]!));
      lowering.emit(f, args);
      f.set(slots[inputs + k]!);
    });
    attrs.outputs.forEach((o, j) => {
      f.get(at)
        .get(slots[o]!)
        .v128Store(chunkAt(streamed.length + j));
    });
    f.bump(at, 16).get(at).get(0).ltU();
  });
  const module = compileModule(assemble({ chunk: f }));
  if (!module) return null;
  chunkMemory ??= new ChunkMemory();
  const memory = chunkMemory;
  const chunk = new api!.Instance(module, { env: { memory: memory.memory } }).exports.chunk as (
    bytes: number,
  ) => void;
  const bytes = scalarAt(inputs);
  return (ins, outs) => {
    const total = outs[0]!.length;
    if (total === 0) return;
    const mem = memory.reserve(bytes);
    scalar.forEach((s, i) => {
      if (s) mem[scalarAt(i) / 4] = ins[i]![0] as number;
    });
    for (let o = 0; o < total; o += CHUNK) {
      const n = Math.min(CHUNK, total - o);
      streamed.forEach((i, s) => {
        mem.set((ins[i] as Float32Array).subarray(o, o + n), chunkAt(s) / 4);
      });
      // Lanes past n compute on whatever the chunk held before; they are never copied out.
      chunk(Math.ceil(n / 4) * 16);
      for (let j = 0; j < outs.length; j++) {
        const from = chunkAt(streamed.length + j) / 4;
        (outs[j] as Float32Array).set(mem.subarray(from, from + n), o);
      }
    }
  };
}

/**
 * A slot's lanes as `want`, converted as the TypeScript loop sees them: a bool where a number is
 * wanted is 0 or 1; a number where a bool is wanted is its truthiness (neither 0 nor NaN).
 */
function as(f: FunctionBody, slot: Local, have: Kind, want: Kind): Local {
  if (have === want) return slot;
  const converted = f.local(V128);
  if (want === 'float') f.get(slot).f32x4Const(1).v128('v128.and');
  else f.get(slot).f32x4Const(0).v128('f32x4.ne').get(slot).get(slot).v128('f32x4.eq').v128('v128.and');
  f.set(converted);
  return converted;
}

/** where(c, a, b): a's lanes where c is true, b's elsewhere. */
function whereLanes(f: FunctionBody, [c, a, b]: readonly Local[]): void {
  f.get(a!).get(b!).get(c!).v128('v128.bitselect');
}
