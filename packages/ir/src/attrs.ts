import { DTYPE_INFO, type DType, dtypeOfArray, type HostArray, isDType } from './dtype.js';
import { invalidArgument, KilnError } from './errors.js';
import type { Region } from './graph/region.js';
import { type ConcreteShape, type Dim, MAX_RANK, sizeOf } from './shape.js';

/**
 * Attribute schemas. Each op declares its attributes with these, and the same schema validates
 * attributes given to the builder and attributes read from untrusted bytes, so a forged graph
 * cannot smuggle a value of the wrong kind into a kernel.
 */
export interface Attr<T> {
  readonly kind: string;
  parse(value: unknown, where: string): T;
  readonly fallback?: T;
}

export type AttrSchema = Readonly<Record<string, Attr<unknown>>>;
export type AttrsOf<S extends AttrSchema> = {
  readonly [K in keyof S]: S[K] extends Attr<infer T> ? T : never;
};
/** Attributes a caller may omit: those with a fallback. */
export type AttrsInput<S extends AttrSchema> = {
  readonly [K in keyof S as S[K] extends { fallback: unknown } ? never : K]: AttrsOf<S>[K];
} & {
  readonly [K in keyof S as S[K] extends { fallback: unknown } ? K : never]?: AttrsOf<S>[K];
};

/** A constant tensor stored in a graph. */
export interface TensorValue {
  readonly dtype: DType;
  readonly shape: ConcreteShape;
  readonly data: HostArray;
}

const fail = (where: string, what: string, value: unknown): never => {
  let shown: string;
  try {
    shown = JSON.stringify(value)?.slice(0, 80) ?? String(value);
  } catch {
    shown = typeof value;
  }
  throw invalidArgument(`${where}: expected ${what}, got ${shown}`);
};

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && Math.abs(x) <= 2 ** 31;
}

function withFallback<T>(attr: Attr<T>, fallback: T): Attr<T> & { fallback: T } {
  return {
    kind: attr.kind,
    fallback,
    parse: (v, where) => (v === undefined ? fallback : attr.parse(v, where)),
  };
}

function make<T>(kind: string, parse: (v: unknown, where: string) => T) {
  const attr: Attr<T> = { kind, parse };
  return Object.assign(attr, { default: (fallback: T) => withFallback(attr, fallback) });
}

/**
 * Region attributes are checked by graph/region.ts, which needs the verifier and so, indirectly,
 * every op. Importing it here would make this module (which every op imports) part of an import
 * cycle whose evaluation order depends on who is imported first; region.ts registers its parser
 * instead, and it is always loaded before any region is parsed (ops/control.ts imports it).
 */
type RegionParser = (value: unknown, where: string) => Region;
let regionParser: RegionParser | undefined;

/** Installs the parser behind `attr.region` (called once, by graph/region.ts). */
export function setRegionParser(parse: RegionParser): void {
  regionParser = parse;
}

export const attr = {
  int: make('int', (v, w) => (isInt(v) ? v : fail(w, 'an integer', v))),
  float: make('float', (v, w) => (typeof v === 'number' ? v : fail(w, 'a number', v))),
  bool: make('bool', (v, w) => (typeof v === 'boolean' ? v : fail(w, 'a boolean', v))),
  string: make('string', (v, w) =>
    typeof v === 'string' && v.length <= 4096 ? v : fail(w, 'a string of at most 4096 characters', v),
  ),
  dtype: make('dtype', (v, w): DType => (isDType(v) ? v : fail(w, 'a dtype (float32, int32, bool)', v))),
  ints: make('ints', (v, w): readonly number[] =>
    Array.isArray(v) && v.length <= 1024 && v.every(isInt) ? v : fail(w, 'a list of integers', v),
  ),
  /** A list of axes, or null for "all axes". */
  axes: make('axes', (v, w): readonly number[] | null =>
    v === null ? null : Array.isArray(v) && v.length <= MAX_RANK && v.every(isInt) ? v : fail(w, 'axes', v),
  ),
  /** A shape whose dimensions may be null (unknown); used by placeholders. */
  shape: make('shape', (v, w): readonly Dim[] =>
    Array.isArray(v) && v.length <= MAX_RANK && v.every((d) => d === null || (isInt(d) && d >= 0))
      ? v
      : fail(w, `a shape (at most ${MAX_RANK} non-negative integers or null)`, v),
  ),
  concreteShape: make(
    'concreteShape',
    (v, w): ConcreteShape =>
      Array.isArray(v) && v.length <= MAX_RANK && v.every((d) => isInt(d) && d >= 0)
        ? v
        : fail(w, `a shape (at most ${MAX_RANK} non-negative integers)`, v),
  ),
  pairs: make('pairs', (v, w): readonly (readonly [number, number])[] =>
    Array.isArray(v) &&
    v.length <= MAX_RANK &&
    v.every((p) => Array.isArray(p) && p.length === 2 && isInt(p[0]) && isInt(p[1]) && p[0] >= 0 && p[1] >= 0)
      ? v
      : fail(w, 'a list of [before, after] pairs of non-negative integers', v),
  ),
  tensor: make('tensor', (v, w): TensorValue => {
    const t = v as Partial<TensorValue> | null;
    if (typeof t !== 'object' || t === null) return fail(w, 'a tensor value', v);
    const shape = attr.concreteShape.parse(t.shape, `${w}.shape`);
    const dtype = attr.dtype.parse(t.dtype, `${w}.dtype`);
    const data = t.data;
    if (
      !(data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint8Array) ||
      dtypeOfArray(data) !== dtype
    ) {
      return fail(w, `a ${dtype} typed array`, typeof data);
    }
    if (data.length !== sizeOf(shape)) {
      throw invalidArgument(`${w}: ${data.length} elements do not fill shape [${shape.join(',')}]`);
    }
    if (dtype === 'bool' && data.some((x) => x > 1)) throw invalidArgument(`${w}: bool data must be 0 or 1`);
    return { dtype, shape, data };
  }),
  /**
   * A nested region (the branches of `cond`, the condition and body of `while`): a self-contained
   * graph with inputs and results. Parsing checks its structure and verifies it, nested regions
   * included, to a bounded depth.
   */
  region: make('region', (v, w): Region => {
    if (!regionParser) throw new KilnError('runtime', `${w}: region attributes are not available yet`);
    return regionParser(v, w);
  }),
};

export function describeDType(d: DType): string {
  return DTYPE_INFO[d].short;
}
