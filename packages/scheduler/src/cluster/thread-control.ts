import type { MessagePort } from 'node:worker_threads';
import type { PeerMessage } from './protocol.js';

/**
 * Messages between a worker thread and whoever started it that are not protocol messages: they
 * carry the data plane's plumbing. A port to a peer thread (from a ThreadPool), a value a peer
 * pushed over a socket (from a worker process), a value for a peer with no port here (to the
 * worker process, which has the socket). They never cross a socket themselves.
 */
export type ThreadControl =
  | { readonly t: 'peer-port'; readonly worker: string; readonly port: MessagePort }
  | { readonly t: 'peer-in'; readonly message: unknown }
  | { readonly t: 'peer-out'; readonly worker: string; readonly message: PeerMessage };

export function isThreadControl(x: unknown): x is ThreadControl {
  const t = typeof x === 'object' && x !== null ? (x as { t?: unknown }).t : undefined;
  return t === 'peer-port' || t === 'peer-in' || t === 'peer-out';
}
