import { KilnError } from '@kiln/ir';

/**
 * A function's result as a shape of leaves: a single leaf, an array, or a record. Used to flatten
 * what a traced function returns into graph outputs and to rebuild it from the run's tensors.
 */
export type Structure =
  | { readonly kind: 'single' }
  | { readonly kind: 'array'; readonly length: number }
  | { readonly kind: 'record'; readonly keys: readonly string[] };

export function flatten<L>(
  value: unknown,
  isLeaf: (x: unknown) => x is L,
  what: string,
): { leaves: L[]; structure: Structure } {
  if (isLeaf(value)) return { leaves: [value], structure: { kind: 'single' } };
  if (Array.isArray(value) && value.every(isLeaf))
    return { leaves: value, structure: { kind: 'array', length: value.length } };
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const entries = Object.entries(value);
    if (entries.every(([, v]) => isLeaf(v))) {
      return {
        leaves: entries.map(([, v]) => v as L),
        structure: { kind: 'record', keys: entries.map(([k]) => k) },
      };
    }
  }
  throw new KilnError(
    'invalid-argument',
    `${what} must return a tensor, an array of tensors or a record of tensors`,
  );
}

export function rebuild<L>(structure: Structure, leaves: readonly L[]): unknown {
  if (structure.kind === 'single') return leaves[0];
  if (structure.kind === 'array') return [...leaves];
  return Object.fromEntries(structure.keys.map((k, i) => [k, leaves[i]]));
}
