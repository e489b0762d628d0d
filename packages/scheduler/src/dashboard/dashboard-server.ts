import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { bind, checkedHost } from '../net/bind.js';

export interface DashboardServerOptions {
  /** Default 127.0.0.1. Any other address needs a token. */
  readonly host?: string;
  /** Default 0: the system picks a free port (read it from `url`). */
  readonly port?: number;
}

export interface DashboardServer {
  /** http://host:port/ with the port actually bound. */
  readonly url: string;
  /** Stops listening and drops open connections (event streams stay open otherwise). */
  close(): Promise<void>;
}

/**
 * The host to serve on, or a KilnError if it is off loopback without a token: anyone who could
 * reach it could cancel jobs. Callers check first, before they start what the dashboard shows.
 */
export function checkDashboardAddress(options: { readonly host?: string; readonly token?: string }): string {
  return checkedHost(
    options,
    (h) =>
      `refusing to serve the dashboard on ${h} without a token: anyone who can reach it could cancel jobs; give dashboard.token, or use 127.0.0.1`,
  );
}

/**
 * A port for the dashboard alone: what an embedded cluster (openJobs) uses, since it has no
 * coordinator port to share. As for the coordinator's port, an address off loopback without a
 * token is refused: anyone who could reach it could cancel jobs.
 */
export async function serveDashboard(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: DashboardServerOptions & { readonly token?: string } = {},
): Promise<DashboardServer> {
  const host = checkDashboardAddress(options);
  const server = createServer(handler);
  const { port, shown } = await bind(server, options.port ?? 0, host);
  return {
    url: `http://${shown}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
