import type { KernelFactory } from '@kiln/ir';
import { type DType, type FusedAttrs, fusedSlotDTypes, parseFusedAttrs } from '@kiln/ir';
import { WASM_FUSED_MIN, wasmFusedLoop } from '../wasm/fused-wasm.js';
import { CAST_TO, type Expr, pick, WHERE } from './elementwise.js';
import { broadcastStrides, collapse, scalarInputs } from './strided.js';
import { compileStridedLoop, type StridedLoop } from './strided-loop.js';

/**
 * A fusion group as one generated loop. Its body computes the program's steps as local constants,
 * each from the same fixed expression table as the single-op kernels (elementwise.ts), picked by a
 * validated op name and the dtype of its arguments; each result is rounded to its dtype as storing
 * it would be (fround, |0), so the fused loop computes bit for bit what the ops did one by one.
 * Nothing from the attributes is written into the code: op names and a cast's dtype only select
 * expressions from the table, and slots become variable names this generator makes up.
 */
const loops = new Map<string, StridedLoop>();
const MAX_CACHED = 512;

/** Rounds a step's float64 result to what storing it in its dtype's array would leave. */
const STORE: Record<DType, (e: Expr) => Expr> = {
  float32: (e) => `Math.fround(${e})`,
  int32: (e) => `((${e}) | 0)`,
  bool: (e) => `(${e})`,
};

/**
 * float32 ops whose result on float32 values is a float32 value already (a sign flip, a selection,
 * an integer part): rounding them again changes nothing, and Math.fround is not free in V8.
 */
const EXACT_F32: ReadonlySet<string> = new Set([
  'neg',
  'abs',
  'sign',
  'relu',
  'floor',
  'ceil',
  'round',
  'maximum',
  'minimum',
  'where',
]);

const fail = (what: string): never => {
  throw new Error(`fused: ${what}`);
};

/**
 * The statements computing every step, given the slots' dtypes (inputs first), and the variable
 * name of every slot. Each step's value is rounded to its dtype unless that provably changes
 * nothing: the op is exact on float32 values, or the value is only stored (the typed array rounds).
 */
function stepSource(
  attrs: FusedAttrs,
  dtypes: readonly DType[],
  inputs: number,
): { lines: string[]; names: string[] } {
  const names = Array.from({ length: inputs }, (_, i) => `v${i}`);
  const read = new Set(attrs.program.flatMap((step) => step[1]));
  const stored = new Set(attrs.outputs);
  const lines: string[] = [];
  attrs.program.forEach((step, k) => {
    const [op, args] = step;
    const argNames = args.map((a) => names[a] ?? fail(`step ${k} reads a slot not computed before it`));
    const argType = dtypes[args[0]!] ?? fail(`step ${k} reads a slot with no dtype`);
    const expr =
      step[0] === 'cast'
        ? Object.hasOwn(CAST_TO, step[2])
          ? CAST_TO[step[2]]
          : fail(`step ${k}: no cast to that dtype`)
        : op === 'where'
          ? WHERE
          : pick(op, argType);
    const body = expr.replace(
      /\bx([0-2])\b/g,
      (_, d: string) => argNames[Number(d)] ?? fail(`step ${k}: arity`),
    );
    const slot = inputs + k;
    const name = `v${slot}`;
    const out = dtypes[slot] ?? fail(`step ${k} has no dtype`);
    const exact = out === 'float32' && (EXACT_F32.has(op) || (op === 'cast' && argType !== 'int32'));
    const onlyStored = stored.has(slot) && !read.has(slot);
    lines.push(`const ${name} = ${exact || onlyStored ? `(${body})` : STORE[out](body)};`);
    names.push(name);
  });
  return { lines, names };
}

function loopFor(
  attrs: FusedAttrs,
  dtypes: readonly DType[],
  inputs: number,
  scalar: readonly boolean[],
): StridedLoop {
  const nOut = attrs.outputs.length;
  const { lines, names } = stepSource(attrs, dtypes, inputs);
  const outNames = attrs.outputs.map(
    (o) => (o >= inputs ? names[o] : undefined) ?? fail(`output ${o} is not a step`),
  );
  const body = `${lines.join('\n        ')}\n        ${outNames.map((name, j) => `o${j}[o] = ${name};`).join(' ')}`;
  const key = `${inputs}|${nOut}|${scalar.map(Number).join('')}|${body}`;
  let loop = loops.get(key);
  if (loop) return loop;
  loop = compileStridedLoop(inputs, nOut, 'v', body, scalar);
  if (loops.size >= MAX_CACHED) loops.clear();
  loops.set(key, loop);
  return loop;
}

/** Kernels that run a group's WebAssembly SIMD loop: how tests tell which loop a group got. */
export const WASM_FUSED_KERNELS = new WeakSet<object>();

/**
 * The fused kernel; with `simd`, a group over whole float32 arrays and scalars runs as a
 * WebAssembly SIMD loop (wasm/fused-wasm.ts) where it has only ops that loop computes exactly.
 */
function fusedOn(simd: boolean): KernelFactory<FusedAttrs> {
  return (node) => {
    const inputs = node.inputs.length;
    // The verifier checked all this already; a code generator checks again rather than trust it.
    const attrs = parseFusedAttrs(node.attrs as unknown as Record<string, unknown>);
    const dtypes = fusedSlotDTypes(
      attrs,
      node.inputs.map((t) => t.dtype),
    );
    const outShape = node.outputs[0]!.shape as number[];
    const { shape, strides } = collapse(
      outShape,
      node.inputs.map((t) => broadcastStrides(outShape, t.shape as number[])),
    );
    const scalar = scalarInputs(shape, strides);
    const whole = shape.length === 1 && strides.every((s, i) => s[0] === (scalar[i] ? 0 : 1));
    if (simd && whole && shape[0]! >= WASM_FUSED_MIN) {
      const run = wasmFusedLoop(attrs, dtypes, scalar);
      if (run) {
        WASM_FUSED_KERNELS.add(run);
        return run;
      }
    }
    const loop = loopFor(attrs, dtypes, inputs, scalar);
    return (ins, outs) => loop(ins, outs, shape, strides);
  };
}

export const fusedKernel = fusedOn(false);
/** The fused kernel of the SIMD table. */
export const simdFusedKernel = fusedOn(true);
