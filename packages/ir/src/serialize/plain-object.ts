/**
 * A msgpack map as the reader gives it: an object of the plain kind, not an array and not one of
 * the classes msgpackr can also produce from hostile bytes (typed arrays, dates, sets, errors,
 * regular expressions), which would otherwise pass a `typeof x === 'object'` test.
 */
export const isPlainObject = (x: unknown): x is Record<string, unknown> => {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
};
