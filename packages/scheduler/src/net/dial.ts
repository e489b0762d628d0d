import { readFileSync } from 'node:fs';
import { KilnError } from '@kiln/ir';
import WebSocket from 'ws';
import { authorization } from './token.js';

export interface DialOptions {
  readonly token?: string;
  /** A CA bundle (PEM file) to verify a wss:// server with, besides the system's. */
  readonly ca?: string;
  /** The largest message accepted from the server. Default 1 GiB. */
  readonly maxFrameBytes?: number;
  /** How long the connection and its upgrade may take. Default 10 s. */
  readonly timeoutMillis?: number;
}

/**
 * Opens a WebSocket to a kiln port, presenting the token at the upgrade, and hands it to `attach`
 * at once, in the tick it opens: a message can arrive right behind the upgrade, and a listener
 * added a tick later would miss it. Rejects with a KilnError saying what went wrong: refused,
 * unreachable, a wrong token (401), or too slow.
 */
export function dial<T = WebSocket>(
  url: string,
  options: DialOptions = {},
  attach: (ws: WebSocket) => T = (ws) => ws as T,
): Promise<T> {
  if (!/^wss?:\/\//.test(url))
    return Promise.reject(
      new KilnError(
        'invalid-argument',
        `not a kiln address: '${url}' (expected ws://host:port or wss://host:port)`,
      ),
    );
  const ws = new WebSocket(url, {
    headers: options.token === undefined ? {} : authorization(options.token),
    maxPayload: options.maxFrameBytes ?? 1 << 30,
    perMessageDeflate: false,
    handshakeTimeout: options.timeoutMillis ?? 10_000,
    // A zero masking key: ws then sends our buffers as they are, instead of copying each one to
    // XOR it (and the receiver skips the XOR too). Masking guards caching proxies against pages in
    // a browser that forge frames; every kiln connection is kiln to kiln, authenticated by token
    // (and TLS where it crosses an untrusted network), so the copy buys nothing here.
    generateMask: zeroMask,
    ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
  });
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(
        new KilnError(
          'worker',
          `cannot connect to ${url}: ${why}`,
          cause === undefined ? undefined : { cause },
        ),
      );
    };
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.removeAllListeners('unexpected-response');
      resolve(attach(ws));
    });
    ws.once('unexpected-response', (_req, res) =>
      fail(
        res.statusCode === 401
          ? 'the server refused the token (401)'
          : `the server answered HTTP ${res.statusCode}`,
      ),
    );
    ws.once('error', (e) => fail(e.message, e));
  });
}

function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}
