import type { DType, ValueId } from '@kiln/ir';
import { MATH_WGSL } from './wgsl/math.js';

/** Where a kernel's tensor lives: a value of the subgraph, or a scratch area of the node. */
export type TensorRef =
  | { readonly kind: 'value'; readonly id: ValueId }
  /** Node scratch; `wide` when it holds bools one per u32 word (see the executor's bool redirect). */
  | { readonly kind: 'temp'; readonly index: number; readonly wide: boolean; readonly byteOffset?: number };

/** One tensor a dispatch touches, as the kernel declares it. */
export interface TensorArg {
  readonly ref: TensorRef;
  readonly dtype: DType;
  /** 'raw': written word by word by a kernel that merges bytes itself (never redirected). */
  readonly access: 'read' | 'write' | 'raw';
}

/**
 * One compute dispatch of a kernel. `key` names everything `body` depends on beyond the tensors'
 * dtypes and the parameter count (the framework adds those): op, rank, variant; never a size.
 * Sizes, strides and attributes travel in `params` (u32 words), written to a uniform per run, so a
 * new batch size reuses every pipeline.
 */
export interface Dispatch {
  readonly key: string;
  readonly body: string;
  readonly tensors: readonly TensorArg[];
  readonly params: readonly number[];
  readonly workgroups: number;
}

/** What a kernel factory returns for one node: scratch areas (bytes) and dispatches, in order. */
export interface NodeProgram {
  readonly temps: readonly number[];
  readonly dispatches: readonly Dispatch[];
}

/** How a tensor is laid out in its buffer: bool values are bytes ('packed'), scratch bools words. */
export interface BoundTensor {
  readonly dtype: DType;
  readonly wide: boolean;
  readonly slot: number;
}

export const WG = 64;

export const wgslType = (dtype: DType): string =>
  dtype === 'float32' ? 'f32' : dtype === 'int32' ? 'i32' : 'bool';

/** Number of u32 words of the uniform: kernel params, then one offset per tensor. */
export const uniformWords = (params: number, tensors: number) =>
  Math.max(4, Math.ceil((params + tensors) / 4) * 4);

function accessors(t: BoundTensor, k: number, offsetParam: number): string {
  const b = `b${t.slot}`;
  const base = `P(${offsetParam}u)`;
  const raw = `fn rw${k}(w: u32) -> u32 { return ${b}[w]; }\nfn ww${k}(w: u32, v: u32) { ${b}[w] = v; }\n`;
  return raw + typed(t, k, b, base);
}

function typed(t: BoundTensor, k: number, b: string, base: string): string {
  if (t.dtype === 'bool' && !t.wide) {
    // Bytes inside u32 words: reads pick the byte; writes never happen here (the executor
    // redirects bool results to word-wide scratch and packs them race-free afterwards).
    return `fn ld${k}(i: u32) -> bool { let p = ${base} + i; return ((${b}[p >> 2u] >> ((p & 3u) * 8u)) & 0xffu) != 0u; }\n`;
  }
  if (t.dtype === 'bool') {
    return (
      `fn ld${k}(i: u32) -> bool { return ${b}[${base} + i] != 0u; }\n` +
      `fn st${k}(i: u32, v: bool) { ${b}[${base} + i] = select(0u, 1u, v); }\n`
    );
  }
  const ty = wgslType(t.dtype);
  return (
    `fn ld${k}(i: u32) -> ${ty} { return bitcast<${ty}>(${b}[${base} + i]); }\n` +
    `fn st${k}(i: u32, v: ${ty}) { ${b}[${base} + i] = bitcast<u32>(v); }\n`
  );
}

/** The full WGSL of a dispatch: uniform, bindings, accessors `ldK`/`stK`, helpers, then the body. */
export function shaderSource(d: Dispatch, tensors: readonly BoundTensor[], slots: number): string {
  const words = uniformWords(d.params.length, tensors.length);
  let s = `struct Params { v: array<vec4<u32>, ${words / 4}> };\n@group(0) @binding(0) var<uniform> prm: Params;\n`;
  for (let i = 0; i < slots; i++) {
    s += `@group(0) @binding(${i + 1}) var<storage, read_write> b${i}: array<u32>;\n`;
  }
  s += 'fn P(i: u32) -> u32 { return prm.v[i >> 2u][i & 3u]; }\n';
  s += 'fn Pi(i: u32) -> i32 { return bitcast<i32>(P(i)); }\n';
  s += 'fn Pf(i: u32) -> f32 { return bitcast<f32>(P(i)); }\n';
  s += `fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.y * n.x + w.x; }\n`;
  tensors.forEach((t, k) => {
    s += accessors(t, k, d.params.length + k);
  });
  return `${s}${MATH_WGSL}\n${d.body}`;
}

/** Pipeline cache key: the kernel's key plus what the generated accessors depend on. */
export function pipelineKey(d: Dispatch, tensors: readonly BoundTensor[], slots: number): string {
  const t = tensors.map((x) => `${x.dtype[0]}${x.wide ? 'w' : ''}${x.slot}`).join(',');
  return `${d.key}|p${d.params.length}|s${slots}|${t}`;
}

/** u32 words for parameters: ints wrap to u32, floats are stored as their float32 bits. */
const f32Bits = new Float32Array(1);
const u32View = new Uint32Array(f32Bits.buffer);
export function floatBits(x: number): number {
  f32Bits[0] = x;
  return u32View[0]!;
}
export const u32 = (x: number) => x >>> 0;

/** Entry point signature used by every kernel: 1-D workgroups, folded into x and y by the executor. */
export const ENTRY = (size: number) =>
  `@compute @workgroup_size(${size}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;
