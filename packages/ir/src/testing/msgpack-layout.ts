/**
 * Where the values of a msgpack byte string start and how their lengths are written, read straight
 * off the bytes: the mutators need to forge a length prefix or wrap a value in place, which a
 * decoded tree cannot tell them. The walk is iterative and stops at the first byte it cannot read,
 * so it copes with inputs that are already damaged and with nesting of any depth.
 */

/** What a value's type byte says about it. */
export type MsgpackKind = 'scalar' | 'str' | 'bin' | 'ext' | 'array' | 'map';

export interface MsgpackItem {
  /** Offset of the type byte. */
  readonly start: number;
  readonly kind: MsgpackKind;
  /** Bytes of a str, bin or ext; elements of an array; key-value pairs of a map; 0 for a scalar. */
  readonly length: number;
  /** How wide the length field is: 0 when the type byte holds it (fix forms, fixext). */
  readonly width: 0 | 1 | 2 | 4;
}

/** Scalars by their type byte: how many bytes follow it. */
const SCALAR_BYTES: ReadonlyMap<number, number> = new Map([
  [0xc0, 0], // nil
  [0xc2, 0], // false
  [0xc3, 0], // true
  [0xca, 4], // float 32
  [0xcb, 8], // float 64
  [0xcc, 1], // uint 8, 16, 32, 64
  [0xcd, 2],
  [0xce, 4],
  [0xcf, 8],
  [0xd0, 1], // int 8, 16, 32, 64
  [0xd1, 2],
  [0xd2, 4],
  [0xd3, 8],
]);

/** The fixext type bytes and their data sizes. */
const FIXEXT_BYTES: ReadonlyMap<number, number> = new Map([
  [0xd4, 1],
  [0xd5, 2],
  [0xd6, 4],
  [0xd7, 8],
  [0xd8, 16],
]);

/** The variable-length forms: kind and width of the length field, by type byte. */
const SIZED: ReadonlyMap<number, readonly [MsgpackKind, 1 | 2 | 4]> = new Map([
  [0xc4, ['bin', 1]],
  [0xc5, ['bin', 2]],
  [0xc6, ['bin', 4]],
  [0xc7, ['ext', 1]],
  [0xc8, ['ext', 2]],
  [0xc9, ['ext', 4]],
  [0xd9, ['str', 1]],
  [0xda, ['str', 2]],
  [0xdb, ['str', 4]],
  [0xdc, ['array', 2]],
  [0xdd, ['array', 4]],
  [0xde, ['map', 2]],
  [0xdf, ['map', 4]],
] as const);

function readUint(bytes: Uint8Array, at: number, width: number): number | undefined {
  if (at + width > bytes.length) return undefined;
  let n = 0;
  for (let i = 0; i < width; i++) n = n * 256 + bytes[at + i]!;
  return n;
}

/** The value whose type byte is at `at`, or undefined where no value can start. */
function readItem(bytes: Uint8Array, at: number): MsgpackItem | undefined {
  const b = bytes[at];
  if (b === undefined) return undefined;
  if (b <= 0x7f || b >= 0xe0) return { start: at, kind: 'scalar', length: 0, width: 0 };
  if (b <= 0x8f) return { start: at, kind: 'map', length: b & 0x0f, width: 0 };
  if (b <= 0x9f) return { start: at, kind: 'array', length: b & 0x0f, width: 0 };
  if (b <= 0xbf) return { start: at, kind: 'str', length: b & 0x1f, width: 0 };
  if (SCALAR_BYTES.has(b)) return { start: at, kind: 'scalar', length: 0, width: 0 };
  const fixext = FIXEXT_BYTES.get(b);
  if (fixext !== undefined) return { start: at, kind: 'ext', length: fixext, width: 0 };
  const sized = SIZED.get(b);
  if (sized === undefined) return undefined; // 0xc1, never used
  const [kind, width] = sized;
  const length = readUint(bytes, at + 1, width);
  return length === undefined ? undefined : { start: at, kind, length, width };
}

/**
 * Every value the walk reaches, in byte order: the first value of the bytes and everything inside
 * it, then any values after it (trailing bytes are values too, to a forger).
 */
export function msgpackItems(bytes: Uint8Array): MsgpackItem[] {
  const items: MsgpackItem[] = [];
  let at = 0;
  while (at < bytes.length) {
    const item = readItem(bytes, at);
    if (!item) break;
    items.push(item);
    at += headerBytes(item);
    // An array's or map's elements follow its header: the walk goes into them.
    if (item.kind === 'scalar') at += SCALAR_BYTES.get(bytes[item.start]!) ?? 0;
    else if (item.kind !== 'array' && item.kind !== 'map') at += item.length;
  }
  return items;
}

/** The largest length a field of `width` bytes holds (fix forms: what the type byte holds). */
export function maxLength(kind: MsgpackKind, width: 0 | 1 | 2 | 4): number {
  if (width === 0) return kind === 'str' ? 31 : kind === 'ext' ? 16 : 15;
  return 2 ** (8 * width) - 1;
}

/**
 * The header bytes of a str, bin, array or map of `length` written with a length field `width`
 * wide (0: the fix form, where there is one). Ext headers are left to the caller: their type byte
 * goes with them.
 */
export function lengthHeader(
  kind: 'str' | 'bin' | 'array' | 'map',
  length: number,
  width: 0 | 1 | 2 | 4,
): number[] {
  const field = (w: number) =>
    Array.from({ length: w }, (_, i) => Math.floor(length / 256 ** (w - 1 - i)) % 256);
  if (width === 0) {
    if (kind === 'str') return [0xa0 | (length & 0x1f)];
    if (kind === 'array') return [0x90 | (length & 0x0f)];
    if (kind === 'map') return [0x80 | (length & 0x0f)];
    width = 1; // bin has no fix form
  }
  const first: Record<typeof kind, Partial<Record<1 | 2 | 4, number>>> = {
    str: { 1: 0xd9, 2: 0xda, 4: 0xdb },
    bin: { 1: 0xc4, 2: 0xc5, 4: 0xc6 },
    // Arrays and maps have no 8-bit form: the 16-bit one stands in.
    array: { 1: 0xdc, 2: 0xdc, 4: 0xdd },
    map: { 1: 0xde, 2: 0xde, 4: 0xdf },
  };
  const w = (kind === 'array' || kind === 'map') && width === 1 ? 2 : width;
  return [first[kind][w]!, ...field(w)];
}

/** The number of bytes a value's header takes, its type byte included. */
export function headerBytes(item: MsgpackItem): number {
  return 1 + item.width + (item.kind === 'ext' ? 1 : 0);
}
