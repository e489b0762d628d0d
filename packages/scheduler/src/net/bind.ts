import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KilnError } from '@kiln/ir';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * The address a kiln port binds (default 127.0.0.1), or a KilnError saying `refusal(host)` when it
 * is off loopback without a token: anyone who could reach it could act on the cluster.
 */
export function checkedHost(
  options: { readonly host?: string; readonly token?: string | undefined },
  refusal: (host: string) => string,
): string {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host) && !options.token) throw new KilnError('invalid-argument', refusal(host));
  return host;
}

/** Starts `server` listening; resolves with the port bound and the host as a URL writes it. */
export async function bind(
  server: Server,
  port: number,
  host: string,
): Promise<{ port: number; shown: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { port: (server.address() as AddressInfo).port, shown: host.includes(':') ? `[${host}]` : host };
}
