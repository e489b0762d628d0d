import type { MessagePort } from 'node:worker_threads';

/**
 * A message from a ThreadPool to one of its threads that is not a protocol message: its end of a
 * MessageChannel to a peer thread, the data plane between threads. It never crosses a socket.
 */
export type ThreadControl = { readonly t: 'peer-port'; readonly worker: string; readonly port: MessagePort };

export function isThreadControl(x: unknown): x is ThreadControl {
  return typeof x === 'object' && x !== null && (x as { t?: unknown }).t === 'peer-port';
}
