import { Unpackr } from 'msgpackr';
import { Prng } from '../prng.js';
import {
  appendTrailing,
  type ByteMutation,
  copyBytes,
  deleteBytes,
  flipBits,
  insertBytes,
  setBytes,
  splice,
  truncate,
} from './byte-mutations.js';
import { nestDeeply } from './deep-nesting.js';
import { forgeHeader, framePayload, reframe } from './frame-header.js';
import { forgeLength } from './length-forgery.js';
import { packTree } from './tree-bytes.js';
import {
  confuseType,
  editArray,
  editKeys,
  graft,
  negateZeros,
  nudgeNumber,
  resizeBytes,
  type TreeMutation,
  type TreeVocabulary,
} from './tree-mutations.js';

/** What a fuzz campaign mutates, and how the format looks to the mutators. */
export interface FuzzTarget extends TreeVocabulary {
  /** Valid inputs to start from (they also donate fragments to splices). */
  readonly sources: readonly Uint8Array[];
  /** The inputs carry the 16-byte kiln header (graph and checkpoint files); wire frames do not. */
  readonly framed: boolean;
  /** Format-aware tree edits, on top of the generic ones (say, valid-looking ids out of range). */
  readonly treeMutations?: readonly TreeMutation[];
}

/** One mutated input: its bytes, the family of mutations that made it, and what each did. */
export interface Mutant {
  readonly bytes: Uint8Array;
  readonly family: MutationFamily;
  readonly notes: readonly string[];
}

/**
 * - header: a header field forged (framed targets only), the payload untouched;
 * - frame bytes: the whole file damaged with the header left as it was, so the CRC catches it;
 * - bytes: the msgpack bytes damaged (and the header repaired, for framed targets);
 * - tree: the decoded msgpack tree edited and re-packed (and the header repaired).
 */
export type MutationFamily = 'header' | 'frame bytes' | 'bytes' | 'tree';

/** The byte mutations, each drawn with the same probability. */
function byteMutations(target: FuzzTarget): readonly ByteMutation[] {
  const donors = target.sources.map((s) => (target.framed ? framePayload(s) : s));
  return [
    flipBits,
    setBytes,
    insertBytes,
    deleteBytes,
    truncate,
    appendTrailing,
    forgeLength,
    nestDeeply,
    splice(donors),
  ];
}

function treeMutations(target: FuzzTarget): readonly TreeMutation[] {
  // Type confusion twice over: it is the edit that reaches the most field checks.
  const confuse = confuseType(target);
  return [
    confuse,
    confuse,
    nudgeNumber,
    negateZeros,
    resizeBytes,
    editArray,
    editKeys(target),
    graft,
    ...(target.treeMutations ?? []),
  ];
}

// The reader the mutators use to see the tree: it must see what kiln's reader sees (maps as plain
// objects, typed arrays as typed arrays), and it never throws on the valid sources.
const treeReader = new Unpackr({ useRecords: false, moreTypes: true, mapsAsObjects: true });

/** The mutant of `target` that `seed` names; the same seed always gives the same bytes. */
export function mutant(seed: number, target: FuzzTarget): Mutant {
  const rng = new Prng(seed);
  const notes: string[] = [];
  const index = rng.int(0, target.sources.length - 1);
  // A private copy: whatever a mutation does, the next case starts from the same source.
  const source = copyBytes(target.sources[index]!);
  notes.push(`source ${index}`);
  const r = rng.next();
  if (target.framed && r < 0.08) return { bytes: forgeHeader(rng, source, notes), family: 'header', notes };
  if (target.framed && r < 0.18) {
    const mutation = rng.pick(byteMutations(target));
    return { bytes: mutation(rng, source, notes), family: 'frame bytes', notes };
  }
  const payload = target.framed ? framePayload(source) : source;
  const wrap = (bytes: Uint8Array) => (target.framed ? reframe(source, bytes) : bytes);
  if (r < 0.5) {
    let bytes = payload;
    for (let rounds = rng.int(1, 3); rounds > 0; rounds--) {
      const mutation = rng.pick(byteMutations(target));
      bytes = mutation(rng, bytes, notes);
    }
    return { bytes: wrap(bytes), family: 'bytes', notes };
  }
  let tree = treeReader.unpack(payload);
  const edits = treeMutations(target);
  for (let rounds = rng.int(1, 3); rounds > 0; rounds--) tree = rng.pick(edits)(rng, tree, notes);
  let bytes = packTree(tree);
  // Now and then a byte-level forgery on top, in a tree the byte mutations alone would not reach.
  if (rng.bool(0.15)) bytes = rng.pick([forgeLength, nestDeeply, appendTrailing])(rng, bytes, notes);
  return { bytes: wrap(bytes), family: 'tree', notes };
}
