import { type Attempt, describeAttempt } from './campaign.js';

/**
 * Runs `fn` with most of the stack already used, as when a decoder is called from deep inside a
 * program (an async chain, a worker's message handler). A decoder whose outcome depends on how
 * much stack is left (a recursive reader that overflows on deep input) gives a different answer
 * here than from a test's shallow stack, and the fuzz tests compare the two.
 */
export function underDeepStack<T>(fn: () => T): T {
  room ??= Math.floor(probeDepth() * 0.6);
  for (;;) {
    let started = false;
    try {
      return dive(room, () => {
        started = true;
        return fn();
      });
    } catch (e) {
      // The dive itself ran out of stack (its frames are larger than the probe's): dive less deep.
      if (started || !(e instanceof RangeError) || room < 100) throw e;
      room = Math.floor(room / 2);
    }
  }
}

let room: number | undefined;

function dive<T>(frames: number, fn: () => T): T {
  if (frames === 0) return fn();
  const result = dive(frames - 1, fn);
  return result; // not a tail call: every frame stays on the stack while fn runs
}

/** How many frames of a small recursive function fit on this thread's stack. */
function probeDepth(): number {
  let depth = 0;
  const probe = (): void => {
    depth++;
    probe();
  };
  try {
    probe();
  } catch {
    // the RangeError that ends the probe
  }
  return depth;
}

/**
 * For a case whose mutations nested values deeply (notes starting 'nest'): how the decode differs
 * when run again under a deep stack, or undefined when it gives the same answer. Deeply nested
 * input must get the same answer wherever the decoder is called from.
 */
export function stackDependence(
  notes: readonly string[],
  shallow: Attempt<unknown>,
  again: () => Attempt<unknown>,
): string | undefined {
  if (!notes.some((n) => n.startsWith('nest'))) return undefined;
  const deep = describeAttempt(underDeepStack(again));
  const here = describeAttempt(shallow);
  return deep === here
    ? undefined
    : `from a deep stack ${deep.slice(0, 150)}; from a shallow one ${here.slice(0, 150)}`;
}
