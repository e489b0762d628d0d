import type { Prng } from '../prng.js';
import { anyValue, confusingValue } from './confusing-values.js';

/**
 * Mutations of the decoded msgpack tree: the bytes stay well-formed msgpack, so the change reaches
 * the decoder's own field checks instead of stopping at the msgpack reader. Each takes the root and
 * returns the root (a new one when the root itself was replaced).
 */
export type TreeMutation = (rng: Prng, root: unknown, notes: string[]) => unknown;

/** What a tree mutation may draw on besides the generic values: names and values of the format. */
export interface TreeVocabulary {
  /** Values that mean something in the format (field names, tags, dtype names, ids). */
  readonly values?: (rng: Prng) => unknown;
  /** Map keys the format uses, and ones it must refuse. */
  readonly keys?: readonly string[];
}

type Container = unknown[] | Record<string, unknown>;

/** A place in the tree: a container and the key or index of one of its entries. */
export interface Slot {
  readonly parent: Container;
  readonly key: number | string;
  readonly path: string;
}

const isMap = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === Object.prototype;

/** Every entry of every array and map in the tree, depth first (iteratively: trees may be deep). */
export function treeSlots(root: unknown): Slot[] {
  const out: Slot[] = [];
  const stack: [unknown, string][] = [[root, '$']];
  while (stack.length) {
    const [x, path] = stack.pop()!;
    if (Array.isArray(x)) {
      for (let i = x.length - 1; i >= 0; i--) {
        out.push({ parent: x, key: i, path: `${path}[${i}]` });
        stack.push([x[i], `${path}[${i}]`]);
      }
    } else if (isMap(x)) {
      for (const k of Object.keys(x)) {
        out.push({ parent: x, key: k, path: `${path}.${k}` });
        stack.push([x[k], `${path}.${k}`]);
      }
    }
  }
  return out;
}

const get = (s: Slot) => (s.parent as Record<string | number, unknown>)[s.key];
const put = (s: Slot, v: unknown) => {
  // defineProperty, not assignment: a key such as '__proto__' must become an entry, not a prototype.
  Object.defineProperty(s.parent, s.key, { value: v, enumerable: true, writable: true, configurable: true });
};

/** A short description of a value for a note. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength} bytes)`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (isMap(v)) return `map(${Object.keys(v).join(',').slice(0, 30)})`;
  return typeof v === 'object' && v !== null ? v.constructor.name : String(v);
}

function pickSlot(rng: Prng, root: unknown): Slot | undefined {
  const slots = treeSlots(root);
  return slots.length ? rng.pick(slots) : undefined;
}

/** A node replaced by a value of another msgpack type (or, now and then, the whole root). */
export function confuseType(vocabulary: TreeVocabulary = {}): TreeMutation {
  return (rng, root, notes) => {
    const slot = rng.bool(0.02) ? undefined : pickSlot(rng, root);
    const current = slot ? get(slot) : root;
    const value = vocabulary.values && rng.bool(0.3) ? vocabulary.values(rng) : confusingValue(rng, current);
    notes.push(`${slot?.path ?? '$'} = ${describeValue(value)}`);
    if (!slot) return value;
    put(slot, value);
    return root;
  };
}

/** A number moved to a neighbour or a boundary: off by one, negated, scaled, made fractional. */
export const nudgeNumber: TreeMutation = (rng, root, notes) => {
  const numbers = treeSlots(root).filter((s) => typeof get(s) === 'number');
  if (!numbers.length) return root;
  const slot = rng.pick(numbers);
  const x = get(slot) as number;
  const v = rng.pick([x + 1, x - 1, -x, x * 2, x + 0.5, x * 2 ** 20, x + 2 ** 32, x === 0 ? 1 : 0]);
  notes.push(`${slot.path} ${x} -> ${v}`);
  put(slot, v);
  return root;
};

/**
 * Every 0 under one node turned into -0: the float that a reader must not pass on as a size or id
 * (JS tells it apart, msgpack writers do not keep it). All of them at once, because a decoder
 * usually checks one zero against another (a shape against the shape it was declared with).
 */
export const negateZeros: TreeMutation = (rng, root, notes) => {
  if (root === 0) {
    notes.push('$ = -0');
    return -0;
  }
  const slots = treeSlots(root);
  const top = slots.length && rng.bool(0.8) ? rng.pick(slots) : undefined;
  const zeros = (top ? [top, ...treeSlots(get(top))] : slots).filter((s) => get(s) === 0);
  notes.push(`${zeros.length} zeros under ${top?.path ?? '$'} -> -0`);
  for (const s of zeros) put(s, -0);
  return root;
};

/**
 * Binary data (bin, typed arrays) replaced by bytes of another length: a little longer or shorter,
 * empty, or random, keeping its leading bytes where it can. Type confusion never does this (the
 * replacement is bytes again), yet it is how a tensor's data stops matching its shape.
 */
export const resizeBytes: TreeMutation = (rng, root, notes) => {
  const binaries = treeSlots(root).filter((s) => ArrayBuffer.isView(get(s)));
  if (!binaries.length) return root;
  const slot = rng.pick(binaries);
  const view = get(slot) as ArrayBufferView;
  const old = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const n = old.length;
  const length = Math.max(0, rng.pick([n + 1, n - 1, n + 4, n - 4, n * 2, 0, rng.int(0, 40)]));
  const out = new Uint8Array(length);
  out.set(old.subarray(0, length));
  for (let i = n; i < length; i++) out[i] = rng.bool(0.8) ? rng.int(0, 1) : rng.int(0, 255);
  notes.push(`${slot.path}: ${n} -> ${length} bytes`);
  put(slot, out);
  return root;
};

/** An array entry deleted, duplicated, swapped, cut off after, or a new one pushed. */
export const editArray: TreeMutation = (rng, root, notes) => {
  const entries = treeSlots(root).filter((s) => Array.isArray(s.parent));
  if (!entries.length) return root;
  const slot = rng.pick(entries);
  const list = slot.parent as unknown[];
  const i = slot.key as number;
  const op = rng.pick(['delete', 'duplicate', 'swap', 'cut', 'push'] as const);
  notes.push(`${slot.path}: ${op}`);
  if (op === 'delete') list.splice(i, 1);
  else if (op === 'duplicate') list.splice(i, 0, structuredClone(list[i]));
  else if (op === 'swap') {
    const j = rng.int(0, list.length - 1);
    [list[i], list[j]] = [list[j], list[i]];
  } else if (op === 'cut') list.length = i;
  else list.push(anyValue(rng));
  return root;
};

const GENERIC_KEYS = ['', 'x', '__proto__', 'constructor', 'length', '0'];

/** A map entry deleted, added (under a name of the format or a hostile one) or renamed. */
export function editKeys(vocabulary: TreeVocabulary = {}): TreeMutation {
  const keys = [...(vocabulary.keys ?? []), ...GENERIC_KEYS];
  return (rng, root, notes) => {
    const entries = treeSlots(root).filter((s) => !Array.isArray(s.parent));
    if (!entries.length) return root;
    const slot = rng.pick(entries);
    const map = slot.parent as Record<string, unknown>;
    const name = rng.pick(keys);
    const op = rng.pick(['delete', 'add', 'rename'] as const);
    notes.push(`${slot.path}: ${op} ${JSON.stringify(name)}`);
    const value = map[slot.key as string];
    if (op !== 'add') delete map[slot.key as string];
    if (op !== 'delete') {
      const v =
        op === 'add' ? (vocabulary.values && rng.bool() ? vocabulary.values(rng) : anyValue(rng)) : value;
      put({ parent: map, key: name, path: '' }, v);
    }
    return root;
  };
}

/** A copy of one subtree put in place of another: right types in the wrong place. */
export const graft: TreeMutation = (rng, root, notes) => {
  const slots = treeSlots(root);
  if (!slots.length) return root;
  const to = rng.pick(slots);
  const from = rng.pick(slots);
  notes.push(`${to.path} = copy of ${from.path}`);
  put(to, structuredClone(get(from)));
  return root;
};
