/**
 * How deep the msgpack value at the start of `bytes` nests, read off its headers before msgpackr
 * decodes it. msgpackr's reader is recursive: input nested thousands deep overflows the stack, and
 * how deep that takes depends on how much stack the caller left, so without a bound of our own the
 * same bytes would be refused in one place and read (or refused for another reason) in another.
 *
 * It counts every way msgpackr nests: arrays and maps, and the extensions that read the value after
 * their data (errors, sets, regular expressions, clone ids). msgpackr's record definitions and
 * string bundles are refused outright: no kiln writer uses them, and after one definition a single
 * byte opens a record, which this walk would otherwise have to track as msgpackr does.
 */

/** Far deeper than any kiln format nests (a graph about 80: regions 16 deep, 4 levels each). */
export const MAX_MSGPACK_DEPTH = 256;

/** Extension types whose reader goes on to read the value after the extension's own data. */
const READS_NEXT_VALUE = new Set([0x65, 0x69, 0x73, 0x78]);
const RECORD_DEFINITION = 0x72;
const STRING_BUNDLE = 0x62;

/** Fixed sizes after the type byte: [bytes before the data, data bytes] by type byte. */
const FIXED: ReadonlyMap<number, readonly [number, number]> = new Map([
  [0xca, [0, 4]],
  [0xcb, [0, 8]],
  [0xcc, [0, 1]],
  [0xcd, [0, 2]],
  [0xce, [0, 4]],
  [0xcf, [0, 8]],
  [0xd0, [0, 1]],
  [0xd1, [0, 2]],
  [0xd2, [0, 4]],
  [0xd3, [0, 8]],
  // fixext 1, 2, 4, 8, 16: a type byte, then the data
  [0xd4, [1, 1]],
  [0xd5, [1, 2]],
  [0xd6, [1, 4]],
  [0xd7, [1, 8]],
  [0xd8, [1, 16]],
]);

/** Length-prefixed forms: [width of the length, 1 if an ext type byte follows it] by type byte. */
const SIZED: ReadonlyMap<number, readonly [number, number]> = new Map([
  [0xc4, [1, 0]], // bin 8, 16, 32
  [0xc5, [2, 0]],
  [0xc6, [4, 0]],
  [0xc7, [1, 1]], // ext 8, 16, 32
  [0xc8, [2, 1]],
  [0xc9, [4, 1]],
  [0xd9, [1, 0]], // str 8, 16, 32
  [0xda, [2, 0]],
  [0xdb, [4, 0]],
]);

function uintAt(bytes: Uint8Array, at: number, width: number): number {
  let n = 0;
  for (let i = 0; i < width; i++) n = n * 256 + (bytes[at + i] ?? 0);
  return n;
}

/**
 * Why the first msgpack value of `bytes` must not be decoded (too deep, or a record or bundle), or
 * undefined. Bytes it cannot read as msgpack are left to the decoder to refuse.
 */
export function nestingRefusal(bytes: Uint8Array, maxDepth = MAX_MSGPACK_DEPTH): string | undefined {
  // How many values each open level still holds; level 0 holds the one top-level value.
  const open: number[] = [1];
  let at = 0;
  while (open.length > 0 && at < bytes.length) {
    const b = bytes[at]!;
    let size = 1; // the whole value when it is a leaf; its header when it holds values
    let children = 0;
    let extType = -1;
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
      // fixint, nil, never-used, false, true: one byte
    } else if (b <= 0x8f) children = (b & 0x0f) * 2;
    else if (b <= 0x9f) children = b & 0x0f;
    else if (b <= 0xbf) size += b & 0x1f;
    else if (b === 0xdc || b === 0xdd) {
      size += b === 0xdc ? 2 : 4;
      children = uintAt(bytes, at + 1, size - 1);
    } else if (b === 0xde || b === 0xdf) {
      size += b === 0xde ? 2 : 4;
      children = uintAt(bytes, at + 1, size - 1) * 2;
    } else {
      const fixed = FIXED.get(b);
      const sized = SIZED.get(b);
      if (fixed) {
        if (fixed[0]) extType = bytes[at + 1] ?? -1;
        size += fixed[0] + fixed[1];
      } else if (sized) {
        const [width, typed] = sized;
        if (typed) extType = bytes[at + 1 + width] ?? -1;
        size += width + typed + uintAt(bytes, at + 1, width);
      }
    }
    if (extType === RECORD_DEFINITION) return 'a msgpackr record definition (kiln data has none)';
    if (extType === STRING_BUNDLE) return 'a msgpackr string bundle (kiln data has none)';
    if (READS_NEXT_VALUE.has(extType)) children = 1;
    open[open.length - 1]!--;
    at += size;
    if (children > 0) {
      if (open.length > maxDepth) return `values nested more than ${maxDepth} deep`;
      open.push(children);
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
  }
  return undefined;
}
