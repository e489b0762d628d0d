import { KilnError } from '@kiln/ir';
import { Tensor } from '../eager/tensor.js';

/**
 * The input signature of a call: for each tensor argument its dtype, shape and device; for every
 * other argument its value (as JSON), since a trace bakes those in. Equal signatures may share a
 * trace; any difference retraces.
 */
export function signatureOf(args: readonly unknown[], fnName: string): string {
  return args
    .map((a, i) => {
      if (a instanceof Tensor) return `T(${a.dtype}[${a.shape.join(',')}]@${a.device})`;
      if (a === undefined) return 'undefined';
      if (
        typeof a === 'function' ||
        typeof a === 'symbol' ||
        typeof a === 'bigint' ||
        (typeof a === 'object' && a !== null && !isJsonLike(a))
      ) {
        throw new KilnError(
          'invalid-argument',
          `${fnName}: argument ${i} is a ${describe(a)}; compiled functions take tensors and plain JSON values`,
        );
      }
      return JSON.stringify(a);
    })
    .join(', ');
}

function isJsonLike(x: object): boolean {
  if (x instanceof Tensor) return false;
  if (Array.isArray(x)) return x.every((v) => v === null || typeof v !== 'object' || isJsonLike(v));
  if (Object.getPrototypeOf(x) !== Object.prototype) return false;
  return Object.values(x).every(
    (v) => v === null || (typeof v !== 'function' && (typeof v !== 'object' || isJsonLike(v))),
  );
}

const describe = (x: unknown) =>
  typeof x === 'object' && x !== null ? (x.constructor?.name ?? 'object') : typeof x;
