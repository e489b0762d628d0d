import { KilnError } from '@kiln/ir';
import type { FrameLink } from './link.js';

/**
 * Says hello on a link just dialed and waits for the peer's welcome, its first message: a client
 * of the coordinator (a cluster client, a jobs client) starts this way. Anything else first, a
 * close, or silence past `timeoutMillis` is a KilnError that says which.
 */
export function greet<In extends { readonly t: string }, Out>(
  link: FrameLink<In, Out>,
  hello: Out,
  url: string,
  timeoutMillis = 10_000,
): Promise<Extract<In, { t: 'welcome' }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      link.close('no welcome', 1002);
      reject(
        new KilnError('timeout', `the coordinator at ${url} did not answer within ${timeoutMillis / 1000} s`),
      );
    }, timeoutMillis);
    link.onClose((reason) => {
      clearTimeout(timer);
      reject(new KilnError('worker', `the coordinator at ${url} closed the connection: ${reason}`));
    });
    link.onMessage((m) => {
      clearTimeout(timer);
      if (m.t === 'welcome') resolve(m as Extract<In, { t: 'welcome' }>);
      else
        reject(new KilnError('protocol', `the coordinator at ${url} answered '${m.t}' before its welcome`));
    });
    void link.send(hello).catch(() => undefined);
  });
}
