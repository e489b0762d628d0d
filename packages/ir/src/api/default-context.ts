import { KilnError } from '../errors.js';
import type { OpContext } from './handle.js';

/**
 * The context that creation functions (`tensor([...])`, `zeros`, `randomNormal`) use when no
 * graph is passed: an eager device, set by the runtime (importing 'kiln-tensor' sets the CPU device).
 * A module variable, not I/O: the IR stays pure.
 */
let current: OpContext | null = null;

export function setDefaultContext(ctx: OpContext | null): void {
  current = ctx;
}

export function defaultContext(): OpContext {
  if (!current) {
    throw new KilnError(
      'invalid-argument',
      "no default device for eager tensors: import 'kiln-tensor' (it sets the CPU device), or pass a graph as the first argument",
    );
  }
  return current;
}

export function isOpContext(x: unknown): x is OpContext {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as OpContext).apply === 'function' &&
    typeof (x as OpContext).constant === 'function'
  );
}
