import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { bind, checkedHost } from './bind.js';
import type { NetLog } from './log.js';
import { bearerToken, tokenMatches } from './token.js';

/** TLS material, as file paths (PEM). */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  /** A CA bundle to verify peers' certificates with (clients, and peers that dial). */
  readonly ca?: string;
}

export interface ListenOptions {
  /** Default 127.0.0.1. Any other address needs a token. */
  readonly host?: string;
  /** Default 0: the system picks a free port (read it from `url`). */
  readonly port?: number;
  /** The shared secret every connection must present; required off loopback. */
  readonly token?: string;
  readonly tls?: TlsFiles;
  /** The largest message accepted, in bytes; a larger one closes the connection. Default 1 GiB. */
  readonly maxFrameBytes?: number;
  readonly log: NetLog;
  /**
   * What answers plain HTTP requests on this port (the jobs coordinator's dashboard). It checks
   * its own access: only upgrades pass the token check here. Default: 426, WebSocket only.
   */
  readonly onRequest?: (request: IncomingMessage, response: ServerResponse) => void;
}

export interface Listening {
  /** ws://host:port or wss://host:port, with the port actually bound. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Opens a port for kiln connections. The door is checked before anything is parsed: the token at
 * the HTTP upgrade (401 and the socket destroyed otherwise, a log line naming who knocked), and a
 * size limit on every message. Compression is off: tensors do not compress, and inflating a
 * small frame into a huge one is an attack. `accept` receives each authenticated socket.
 */
export async function listen(
  options: ListenOptions,
  accept: (ws: WebSocket, request: IncomingMessage) => void,
): Promise<Listening> {
  const host = checkedHost(
    options,
    (h) =>
      `refusing to listen on ${h} without a token: anyone who can reach the port could run graphs on this cluster; give a token (--token or KILN_TOKEN), or listen on 127.0.0.1`,
  );
  const server: Server = options.tls
    ? createHttpsServer({
        cert: readFileSync(options.tls.cert),
        key: readFileSync(options.tls.key),
        ...(options.tls.ca ? { ca: readFileSync(options.tls.ca) } : {}),
      })
    : createHttpServer();
  // Plain HTTP requests get nothing unless a handler was given: this port only upgrades.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!options.onRequest) {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('kiln: WebSocket only\n');
      return;
    }
    try {
      options.onRequest(req, res);
    } catch (e) {
      // A handler that throws must not take the cluster's port down with it.
      options.log(`a plain HTTP request failed: ${e instanceof Error ? e.message : String(e)}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end();
    }
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameBytes ?? 1 << 30,
    perMessageDeflate: false,
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const who = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
    if (options.token !== undefined && !tokenMatches(options.token, bearerToken(request))) {
      options.log(
        `refused a connection from ${who}: ${bearerToken(request) === undefined ? 'no token' : 'wrong token'}`,
      );
      socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => accept(ws, request));
  });
  const { port, shown } = await bind(server, options.port ?? 0, host);
  return {
    url: `${options.tls ? 'wss' : 'ws'}://${shown}:${port}`,
    port,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
