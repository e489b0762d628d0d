import { clip } from '../errors.js';
import { isPlainObject } from './plain-object.js';

/** How the decoders of untrusted bytes name what they found, in their error messages. */

function className(x: object): string {
  const ctor: unknown = Object.getPrototypeOf(x)?.constructor;
  const name: unknown = typeof ctor === 'function' ? ctor.name : undefined;
  return typeof name === 'string' && name
    ? name.slice(0, 40)
    : Object.prototype.toString.call(x).slice(8, -1);
}

const article = (noun: string) => `${/^[AEIO]/i.test(noun) ? 'an' : 'a'} ${noun}`;

export function quote(s: string): string {
  return JSON.stringify(clip(s));
}

/**
 * A short description of a decoded value, for messages; never throws, never prints much. Messages
 * about untrusted input must describe values through this, never String() or a template: a value
 * nested thousands deep overflows the stack when stringified, a long one fills the message.
 */
export function describeDecoded(x: unknown): string {
  if (x === null) return 'nil';
  if (x === undefined) return 'undefined';
  switch (typeof x) {
    case 'string':
      return `the string ${quote(x)}`;
    case 'number':
    case 'boolean':
      return String(x);
    case 'bigint':
      return 'a bigint';
    case 'object':
      if (Array.isArray(x)) return `an array of ${x.length}`;
      if (isPlainObject(x)) return 'a map';
      return article(className(x));
    default:
      return typeof x;
  }
}
