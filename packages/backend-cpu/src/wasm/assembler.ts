/**
 * Just enough of a WebAssembly assembler to write kernels from TypeScript at run time: one module
 * with an imported memory and exported functions of i32 parameters, the structured control flow
 * and the scalar and 128-bit SIMD instructions the kernels use. Generating the binary here, rather
 * than compiling C at build time, keeps the package free of a toolchain and of committed binaries,
 * lets the browser bundle and Node load the same kernels, and lets a kernel's shape (its tile, its
 * fused expression) be chosen when it is needed.
 */

/** Value types. */
export const I32 = 0x7f;
export const V128 = 0x7b;
type ValType = typeof I32 | typeof V128;

const EMPTY_BLOCK = 0x40;

/**
 * SIMD instructions by name (their opcodes after the 0xfd prefix). The f32x4 comparisons leave a
 * lane of all ones where true, all zeros where false: the masks the bitwise ones combine, and
 * bitselect(a, b, mask) picks a's bits where the mask is set and b's elsewhere. min and max are
 * IEEE 754-2019's minimum and maximum: NaN if either lane is, and -0 below +0 (Math.min and
 * Math.max); nearest rounds halves to even.
 */
const V128_OPS = {
  'f32x4.eq': 0x41,
  'f32x4.ne': 0x42,
  'f32x4.lt': 0x43,
  'f32x4.gt': 0x44,
  'f32x4.le': 0x45,
  'f32x4.ge': 0x46,
  'v128.not': 0x4d,
  'v128.and': 0x4e,
  'v128.or': 0x50,
  'v128.xor': 0x51,
  'v128.bitselect': 0x52,
  'f32x4.ceil': 0x67,
  'f32x4.floor': 0x68,
  'f32x4.nearest': 0x6a,
  'f32x4.abs': 0xe0,
  'f32x4.neg': 0xe1,
  'f32x4.sqrt': 0xe3,
  'f32x4.add': 0xe4,
  'f32x4.sub': 0xe5,
  'f32x4.mul': 0xe6,
  'f32x4.div': 0xe7,
  'f32x4.min': 0xe8,
  'f32x4.max': 0xe9,
} as const;
export type V128Op = keyof typeof V128_OPS;

function uleb(n: number, out: number[]): void {
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
}

function sleb(n: number, out: number[]): void {
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

/** A local variable or parameter, by index. */
export type Local = number;

/**
 * The body of one function, written instruction by instruction. Memory offsets are in bytes;
 * alignment hints are left at 4 bytes, which every access here satisfies (floats).
 */
export class FunctionBody {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(readonly params: number) {}

  /** A new local of `type`, after the parameters (which are all i32). */
  local(type: ValType): Local {
    this.locals.push(type);
    return this.params + this.locals.length - 1;
  }

  get(l: Local): this {
    return this.op(0x20).idx(l);
  }
  set(l: Local): this {
    return this.op(0x21).idx(l);
  }
  tee(l: Local): this {
    return this.op(0x22).idx(l);
  }
  i32(value: number): this {
    this.code.push(0x41);
    sleb(value | 0, this.code);
    return this;
  }
  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  shl(): this {
    return this.op(0x74);
  }
  ltU(): this {
    return this.op(0x49);
  }
  ne(): this {
    return this.op(0x47);
  }
  /** `local += delta` for an i32 local. */
  bump(l: Local, delta: number): this {
    return this.get(l).i32(delta).add().set(l);
  }

  /** A loop whose body runs once, then again while the condition the body leaves is true. */
  doWhile(body: () => void): this {
    this.code.push(0x03, EMPTY_BLOCK);
    body();
    this.code.push(0x0d, 0, 0x0b); // br_if 0 (to the loop's start); end
    return this;
  }

  // 128-bit SIMD (0xfd prefix).
  v128Load(offset = 0): this {
    return this.simd(0x00).memarg(offset);
  }
  v128Store(offset = 0): this {
    return this.simd(0x0b).memarg(offset);
  }
  /** Loads one float and copies it into all four lanes. */
  load32Splat(offset = 0): this {
    return this.simd(0x09).memarg(offset);
  }
  v128Zero(): this {
    this.simd(0x0c);
    for (let i = 0; i < 16; i++) this.code.push(0);
    return this;
  }
  /** Four lanes of `value` (a float32) as a constant. */
  f32x4Const(value: number): this {
    this.simd(0x0c);
    const lane = new Uint8Array(Float32Array.of(value).buffer);
    for (let i = 0; i < 4; i++) this.code.push(...lane);
    return this;
  }
  /** A lane-wise float32 operation (or a bitwise one on the whole vector), by name. */
  v128(op: V128Op): this {
    return this.simd(V128_OPS[op]);
  }

  /** The encoded body: its locals, then its code. */
  encode(): number[] {
    const out: number[] = [];
    uleb(this.locals.length, out);
    for (const t of this.locals) out.push(1, t);
    out.push(...this.code, 0x0b);
    const sized: number[] = [];
    uleb(out.length, sized);
    return [...sized, ...out];
  }

  private op(byte: number): this {
    this.code.push(byte);
    return this;
  }
  private idx(n: number): this {
    uleb(n, this.code);
    return this;
  }
  private simd(op: number): this {
    this.code.push(0xfd);
    uleb(op, this.code);
    return this;
  }
  private memarg(offset: number): this {
    this.code.push(2); // log2 of the alignment: 4 bytes
    uleb(offset, this.code);
    return this;
  }
}

function section(id: number, body: number[]): number[] {
  const out = [id];
  uleb(body.length, out);
  return [...out, ...body];
}

function name(s: string, out: number[]): void {
  const bytes = new TextEncoder().encode(s);
  uleb(bytes.length, out);
  out.push(...bytes);
}

/**
 * A module importing its memory as env.memory and exporting `functions` by name, each taking its
 * body's count of i32 parameters and returning nothing.
 */
export function assemble(functions: Readonly<Record<string, FunctionBody>>): Uint8Array<ArrayBuffer> {
  const entries = Object.entries(functions);
  const types: number[] = [];
  uleb(entries.length, types);
  for (const [, f] of entries) {
    types.push(0x60);
    uleb(f.params, types);
    for (let i = 0; i < f.params; i++) types.push(I32);
    types.push(0);
  }
  const imports: number[] = [1];
  name('env', imports);
  name('memory', imports);
  imports.push(0x02, 0x00, 1); // memory, limits: minimum 1 page, no maximum
  const funcs: number[] = [];
  uleb(entries.length, funcs);
  entries.forEach((_, i) => uleb(i, funcs));
  const exports: number[] = [];
  uleb(entries.length, exports);
  entries.forEach(([n], i) => {
    name(n, exports);
    exports.push(0x00);
    uleb(i, exports);
  });
  const code: number[] = [];
  uleb(entries.length, code);
  for (const [, f] of entries) code.push(...f.encode());
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}
