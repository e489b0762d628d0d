import * as k from '../api/ops.js';
import type { Attr } from '../attrs.js';
import { DTYPES, type DType, isDType } from '../dtype.js';
import { invalidArgument, KilnError } from '../errors.js';
import type { Prng } from '../prng.js';
import { broadcastIndex, type RefTensor, refTensor } from '../ref-tensor.js';
import { broadcastShapes, type Shape, shapesEqual, type TensorType } from '../shape.js';
import { broadcastPartner, caseShapes } from './case-shapes.js';
import * as ew from './elementwise.js';
import {
  type AnyOpDef,
  type CompositeOpDef,
  type ConcreteType,
  type ConformanceCase,
  type ConformanceInput,
  defineComposite,
  elementBytes,
} from './op-def.js';

/**
 * The ops a fusion program may name: every elementwise op, by name, from this fixed table. The
 * table is the allowlist a parsed program is checked against, so a forged graph can only name
 * these (tests check that it covers every elementwise op in OPS but `fused` itself).
 */
export const FUSIBLE_OPS = ew.ELEMENTWISE_OPS;

export type FusibleOp = keyof typeof FUSIBLE_OPS;

export function isFusibleOp(name: unknown): name is FusibleOp {
  return typeof name === 'string' && Object.hasOwn(FUSIBLE_OPS, name);
}

function fusibleDef(op: FusibleOp): AnyOpDef {
  if (!isFusibleOp(op)) throw invalidArgument(`fused: '${String(op).slice(0, 40)}' is not a fusible op`);
  return FUSIBLE_OPS[op] as unknown as AnyOpDef;
}

/**
 * One step of a fusion program: an elementwise op applied to earlier slots. Slots number the fused
 * node's inputs first (0 .. inputs-1), then the steps (step k is slot inputs + k), like SSA values.
 * Only `cast` has a third field, the dtype it converts to.
 */
export type FusedStep =
  | readonly [op: Exclude<FusibleOp, 'cast'>, args: readonly number[]]
  | readonly [op: 'cast', args: readonly [number], dtype: DType];

/** Bounds on a program, so a forged graph cannot ask for an unbounded kernel. */
export const MAX_FUSED_STEPS = 256;
export const MAX_FUSED_INPUTS = 64;

const isSlot = (x: unknown): x is number =>
  typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x < MAX_FUSED_INPUTS + MAX_FUSED_STEPS;

function arityOf(op: FusibleOp): number {
  const a = fusibleDef(op).arity;
  return typeof a === 'number' ? a : a.min;
}

/** Parses a program: a fresh array of fresh steps, each checked against the allowlist. */
function parseProgram(v: unknown, where: string): readonly FusedStep[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_FUSED_STEPS)
    throw invalidArgument(`${where}: expected a list of 1 to ${MAX_FUSED_STEPS} steps`);
  return v.map((raw, k): FusedStep => {
    const at = `${where}: step ${k}`;
    if (!Array.isArray(raw) || raw.length < 2 || raw.length > 3)
      throw invalidArgument(`${at}: expected [op, args] or ['cast', args, dtype]`);
    const [op, args, dtype] = raw as unknown[];
    if (!isFusibleOp(op)) throw invalidArgument(`${at}: '${String(op).slice(0, 40)}' is not a fusible op`);
    const n = arityOf(op);
    if (!Array.isArray(args) || args.length !== n || !args.every(isSlot))
      throw invalidArgument(`${at}: ${op} takes ${n} slot numbers`);
    // A slot is an input or an earlier step: at most inputs + k. The input count is checked in infer.
    if (args.some((a: number) => a >= MAX_FUSED_INPUTS + k))
      throw invalidArgument(`${at}: refers to a later step`);
    if (op === 'cast') {
      if (raw.length !== 3 || !isDType(dtype)) throw invalidArgument(`${at}: cast needs a dtype`);
      return ['cast', [args[0] as number], dtype];
    }
    if (raw.length !== 2) throw invalidArgument(`${at}: only cast takes a third field`);
    return [op, [...(args as number[])]];
  });
}

function parseOutputs(v: unknown, where: string): readonly number[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_FUSED_STEPS || !v.every(isSlot))
    throw invalidArgument(`${where}: expected a non-empty list of slot numbers`);
  return [...(v as number[])];
}

/** A fusion program as an attribute: parsed and checked against the allowlist (also fusedMatmul's). */
export const fusedProgramAttr: Attr<readonly FusedStep[]> = { kind: 'fusedProgram', parse: parseProgram };
const outputsAttr: Attr<readonly number[]> = { kind: 'fusedOutputs', parse: parseOutputs };

export interface FusedAttrs {
  readonly program: readonly FusedStep[];
  readonly outputs: readonly number[];
}

/**
 * Validates raw attributes exactly as the verifier does and returns fresh copies: for code that
 * must not trust what it was handed (a kernel generator).
 */
export function parseFusedAttrs(raw: Readonly<Record<string, unknown>>, where = 'fused'): FusedAttrs {
  return {
    program: parseProgram(raw.program, `${where}: attribute 'program'`),
    outputs: parseOutputs(raw.outputs, `${where}: attribute 'outputs'`),
  };
}

/**
 * Checks a parsed program against the number of inputs it is given: every argument is an input or
 * an earlier step, every output a step. Returns the dtype of every slot, propagated through each
 * op's own inference on scalar types (so a fused program is typed exactly as its ops would be).
 */
export function fusedSlotDTypes(attrs: FusedAttrs, inputs: readonly DType[]): DType[] {
  const { program, outputs } = attrs;
  const n = inputs.length;
  if (n === 0 || n > MAX_FUSED_INPUTS)
    throw invalidArgument(`fused: takes 1 to ${MAX_FUSED_INPUTS} inputs, got ${n}`);
  const dtypes = [...inputs];
  program.forEach((step, k) => {
    const [op, args] = step;
    for (const a of args) {
      if (a >= n + k)
        throw invalidArgument(`fused: step ${k} (${op}) reads slot ${a}, which is not computed before it`);
    }
    const attrs = step[0] === 'cast' ? { dtype: step[2] } : {};
    let out: TensorType[];
    try {
      out = fusibleDef(op).infer(
        args.map((a) => ({ dtype: dtypes[a]!, shape: [] })),
        attrs,
      );
    } catch (e) {
      if (e instanceof KilnError) throw new KilnError(e.code, `fused: step ${k}: ${e.message}`, { cause: e });
      throw e;
    }
    dtypes.push(out[0]!.dtype);
  });
  for (const o of outputs) {
    if (o < n || o >= n + program.length) throw invalidArgument(`fused: output slot ${o} is not a step`);
  }
  return dtypes;
}

function outputShape(inputs: readonly { shape: Shape }[]): Shape {
  return inputs.slice(1).reduce<Shape>((s, t) => broadcastShapes(s, t.shape, 'fused'), inputs[0]!.shape);
}

/** A reference tensor broadcast to `shape` (materialized: the reference favours clarity). */
function expand(t: RefTensor, shape: readonly number[]): RefTensor {
  const out = refTensor(t.dtype, shape);
  const idx = broadcastIndex(shape, t.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = t.data[idx(i)]!;
  return out;
}

/**
 * A fusion group: several elementwise ops evaluated as one, written as a small program over its
 * inputs (see FusedStep). Every step runs at every element of the broadcast output shape, with the
 * inputs broadcast to it; each step's result is rounded to its dtype, exactly as if it had been
 * stored, so a fused node computes what its ops did one by one. The fusion pass makes these after
 * autodiff; a device compiles one into a single loop.
 */
const fusedAttrSchema = { program: fusedProgramAttr, outputs: outputsAttr };

export const fused: CompositeOpDef<typeof fusedAttrSchema> = defineComposite({
  name: 'fused',
  kind: 'elementwise',
  arity: { min: 1, max: MAX_FUSED_INPUTS },
  attrs: fusedAttrSchema,
  infer(inputs, attrs) {
    const dtypes = fusedSlotDTypes(
      attrs,
      inputs.map((t) => t.dtype),
    );
    const shape = outputShape(inputs);
    return attrs.outputs.map((o) => ({ dtype: dtypes[o]!, shape }));
  },
  reference(inputs, attrs) {
    fusedSlotDTypes(
      attrs,
      inputs.map((t) => t.dtype),
    );
    const shape = outputShape(inputs) as number[];
    const slots = inputs.map((t) => expand(t, shape));
    for (const step of attrs.program) {
      const attrsOf = step[0] === 'cast' ? { dtype: step[2] } : {};
      slots.push(
        fusibleDef(step[0]).reference(
          step[1].map((a) => slots[a]!),
          attrsOf,
        )[0]!,
      );
    }
    return attrs.outputs.map((o) => slots[o]!);
  },
  cost(inputs, outputs, attrs) {
    const shape = outputs[0]!.shape;
    const dtypes = fusedSlotDTypes(
      attrs,
      inputs.map((t) => t.dtype),
    );
    let flops = 0;
    attrs.program.forEach((step, k) => {
      const ins: ConcreteType[] = step[1].map((a) => ({ dtype: dtypes[a]!, shape }));
      const out: ConcreteType = { dtype: dtypes[inputs.length + k]!, shape };
      const attrsOf = step[0] === 'cast' ? { dtype: step[2] } : {};
      flops += fusibleDef(step[0]).cost(ins, [out], attrsOf).flops;
    });
    // The point of fusing: intermediates never touch memory.
    return { flops, bytes: elementBytes(inputs) + elementBytes(outputs) };
  },
  // Each step rounds like the op alone, but a device's error in one step feeds the next.
  tolerance: (_inputs, attrs) => 4 * attrs.program.length,
  gradient: { none: 'fusion runs after autodiff' },
  // The program, op by op. A step over smaller inputs gives a smaller result than the group's:
  // an output that is one is broadcast to the group's shape, as the fused loop writes it.
  decompose: ({ attrs, inputs }) => {
    const ctx = inputs[0]!.context;
    const slots = [...inputs];
    for (const step of attrs.program) {
      const attrsOf = step[0] === 'cast' ? { dtype: step[2] } : {};
      slots.push(
        ctx.apply(
          step[0],
          step[1].map((a) => slots[a]!),
          attrsOf,
        )[0] as (typeof inputs)[number],
      );
    }
    const shape = outputShape(inputs);
    return attrs.outputs.map((o) => {
      const t = slots[o]!;
      return shapesEqual(t.shape, shape) ? t : k.broadcastTo(t, shape as number[]);
    });
  },
  cases: (rng) => fusedCases(rng),
});

// ---------------------------------------------------------------- conformance cases

/**
 * A random, well-typed program over inputs of the given dtypes: each step picks an op and
 * arguments among the slots so far, kept only if the op's inference accepts their dtypes.
 */
export function randomFusedProgram(
  rng: Prng,
  inputs: readonly DType[],
  steps: number,
  /** The ops to draw from (default every fusible op): a device's fused kernel may have fewer. */
  names: readonly FusibleOp[] = Object.keys(FUSIBLE_OPS) as FusibleOp[],
): FusedAttrs {
  const program: FusedStep[] = [];
  const dtypes = [...inputs];
  while (program.length < steps) {
    const op = rng.pick(names);
    // Prefer recent slots, so programs are chains and trees rather than fans of the inputs.
    const pickSlot = () =>
      Math.max(0, dtypes.length - 1 - Math.floor(rng.next() * rng.next() * dtypes.length));
    const args = Array.from({ length: arityOf(op) }, pickSlot);
    const step: FusedStep = op === 'cast' ? ['cast', [args[0]!], rng.pick(DTYPES)] : [op, args];
    try {
      const [out] = fusibleDef(op).infer(
        args.map((a) => ({ dtype: dtypes[a]!, shape: [] })),
        step[0] === 'cast' ? { dtype: step[2] } : {},
      );
      program.push(step);
      dtypes.push(out!.dtype);
    } catch {
      // Not well typed for these slots; draw again.
    }
  }
  const last = inputs.length + steps - 1;
  const outputs = [last];
  if (steps > 1 && rng.bool(0.4)) outputs.push(inputs.length + rng.int(0, steps - 2));
  return { program, outputs };
}

function fusedCases(rng: Prng): ConformanceCase<FusedAttrs>[] {
  const cases: ConformanceCase<FusedAttrs>[] = [];
  for (const shape of caseShapes(rng, 14)) {
    const count = rng.int(1, 3);
    const dtypes: DType[] = Array.from({ length: count }, (_, i) =>
      i === 0 || rng.bool(0.7) ? 'float32' : rng.pick(DTYPES),
    );
    const special = rng.bool(0.3);
    const inputs: ConformanceInput[] = dtypes.map((dtype, i) => ({
      dtype,
      shape: i === 0 ? shape : broadcastPartner(rng, shape),
      domain: dtype === 'float32' && special ? 'special' : 'normal',
    }));
    cases.push({ inputs, attrs: randomFusedProgram(rng, dtypes, rng.int(1, 8)) });
  }
  return cases;
}
