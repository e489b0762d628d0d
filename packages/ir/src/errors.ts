/**
 * kiln's errors. Every error kiln raises on purpose is a KilnError with a `code` a program can
 * switch on; the message says what was wrong and where (op, node, shape, file).
 */
export type KilnErrorCode =
  | 'shape' // shape or dtype inference failed
  | 'invalid-argument' // a bad attribute or argument to an op or API
  | 'verify' // a graph broke an invariant
  | 'feed' // Session.run feeds did not match the placeholders
  | 'serialization' // bytes that are not a valid kiln graph
  | 'abi' // a device plugin does not satisfy the kernel ABI
  | 'unsupported' // a device cannot run a node
  | 'runtime' // a kernel or executor failed
  | 'protocol' // a peer sent a message that breaks the coordinator/worker protocol
  | 'worker' // a worker thread or node failed or died
  | 'cancelled' // the caller cancelled the work: a run, or what was pending on a device it disposed
  | 'timeout' // a run or a worker's start took longer than allowed
  | 'limit'; // a run or an evaluation went past a limit on memory, iterations or work

export class KilnError extends Error {
  override readonly name: string = 'KilnError';
  constructor(
    readonly code: KilnErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Text from untrusted input cut to `max` characters for an error message: a name or tag read from
 * bytes can be megabytes long, and a message must say what was wrong, not carry it.
 */
export function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export const shapeError = (message: string) => new KilnError('shape', message);
export const invalidArgument = (message: string) => new KilnError('invalid-argument', message);

/**
 * `promise`, except that a rejection with a KilnError('cancelled') is never reported as unhandled:
 * work the caller cancelled (by disposing its device, say) is not an error nobody caught. Awaiting
 * the result still throws it; any other failure is reported as usual.
 */
export function handledIfCancelled<T>(promise: Promise<T>): Promise<T> {
  const out: Promise<T> = new Promise((resolve, reject) => {
    promise.then(resolve, (e: unknown) => {
      // A handler attached before the rejection marks it handled; the caller's own still runs.
      if (e instanceof KilnError && e.code === 'cancelled') out.catch(() => undefined);
      reject(e);
    });
  });
  return out;
}
