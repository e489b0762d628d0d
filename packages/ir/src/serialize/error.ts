import { KilnError } from '../errors.js';

/** Every rejection of bytes that are not a loadable kiln graph uses this code. */
export const serializationError = (message: string, cause?: unknown): KilnError =>
  new KilnError('serialization', message, cause === undefined ? undefined : { cause });
