import { KilnError } from '../errors.js';

/** Builds an update, saying whose failed: typically a learning rate from another graph. */
export function building<R>(who: string, build: () => R): R {
  try {
    return build();
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    throw new KilnError(e.code, `dataParallel: building ${who}: ${e.message}`, { cause: e });
  }
}
