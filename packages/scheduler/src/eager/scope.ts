import { KilnError } from '@kiln/ir';

/** What scopes track: anything that can be disposed and asked whether it has been. */
export interface Tracked {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Tracked>[] = [];

/** Called by every new tensor: the innermost scope, if any, will own it. */
export function track(t: Tracked): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Takes a tensor out of every open scope, so it outlives them (for state kept across steps). */
export function keep<T extends Tracked>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, into: Set<unknown>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (into.has(value)) return;
  into.add(value);
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, into, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor it created except those it returns (found in the result,
 * arrays and plain objects included), which move to the enclosing scope. Like tf.tidy. `fn` must
 * be synchronous: a scope cannot know which tensors an unfinished promise will still need.
 */
export function tidy<R>(fn: () => R): R {
  const scope = new Set<Tracked>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new KilnError(
      'invalid-argument',
      'tidy: the function returned a promise; tidy takes synchronous functions (await inside is not tracked)',
    );
  }
  if (typeof result !== 'object' || result === null) {
    // Nothing returned can hold a tensor: dispose them all, with no search.
    for (const t of scope) t.dispose();
    return result;
  }
  const returned = new Set<unknown>();
  collect(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (returned.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}
