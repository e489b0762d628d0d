import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster } from '../cluster/cluster.js';
import type { JobService } from '../jobs/job-service.js';
import type { NetLog } from '../net/log.js';
import { tokenMatches } from '../net/token.js';
import { admitted, signInCookie } from './access.js';
import { type Asset, assets } from './assets.js';
import { openEventStream } from './event-stream.js';
import { LiveFeed } from './live-feed.js';
import { head, sendJson, sendText } from './responses.js';
import { jobDetail, overview, summary } from './views.js';

export interface DashboardOptions {
  /**
   * The token every request must present (the cluster's). Without one the dashboard is open to
   * whoever reaches it, which is why a port off loopback always has one.
   */
  readonly token?: string;
  /** Where the handler's own failures are told; default: nowhere. */
  readonly log?: NetLog;
}

/** A request handler for node:http, and `close` to end the event streams it holds open. */
export type DashboardHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  close(): void;
};

/** What a path serves: its one method, the job it is about (if any), and how it answers. */
interface Route {
  readonly method: 'GET' | 'POST';
  readonly job?: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void;
}

/** Job ids as the store makes them (and a little more): anything else is no job's path. */
const JOB_ID = '[A-Za-z0-9_.-]{1,64}';
const JOB_PATH = new RegExp(`^/api/jobs/(${JOB_ID})$`);
const CANCEL_PATH = new RegExp(`^/api/jobs/(${JOB_ID})/cancel$`);

/**
 * The jobs dashboard: the page, its script and styles, the chart library, and a JSON API over the
 * job service and the cluster, with a live event stream. Every request must present the token
 * when one is set; nothing else is served but GET and POST, and no request body is read.
 */
export function dashboardHandler(
  service: JobService,
  cluster: Cluster,
  options: DashboardOptions = {},
): DashboardHandler {
  const files = assets();
  const feed = new LiveFeed(service, cluster);
  const streams = new Set<() => void>();

  const stream = (req: IncomingMessage, res: ServerResponse) => {
    const end = openEventStream(req, res, feed);
    streams.add(end);
    res.on('close', () => streams.delete(end));
  };
  const cancel = (req: IncomingMessage, res: ServerResponse, id: string) => {
    if (!sameOrigin(req)) sendText(res, 403, 'kiln: cancel is accepted only from the dashboard page itself');
    else sendJson(res, 200, summary(service.cancel(id)));
  };
  const route = (path: string): Route | undefined => {
    const file = files.get(path);
    if (file) return { method: 'GET', handle: (_req, res) => sendAsset(res, file) };
    if (path === '/api/overview')
      return {
        method: 'GET',
        handle: async (_req, res) => sendJson(res, 200, await overview(service, cluster)),
      };
    if (path === '/api/live') return { method: 'GET', handle: stream };
    const job = JOB_PATH.exec(path)?.[1];
    if (job !== undefined)
      return {
        method: 'GET',
        job,
        handle: async (_req, res) => sendJson(res, 200, await jobDetail(service, cluster, job)),
      };
    const stop = CANCEL_PATH.exec(path)?.[1];
    if (stop !== undefined)
      return { method: 'POST', job: stop, handle: (req, res) => cancel(req, res, stop) };
    return undefined;
  };

  const respond = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'POST') {
      sendText(res, 405, `kiln: ${method.slice(0, 16)} is not served here: use GET or POST`, {
        allow: 'GET, POST',
      });
      return;
    }
    if (!req.url?.startsWith('/')) {
      sendText(res, 400, 'kiln: a request path must start with /');
      return;
    }
    // Parsed under a fixed origin: a path such as //elsewhere stays a path.
    const href = `http://dashboard${req.url}`;
    const url = URL.canParse(href) ? new URL(href) : null;
    if (!url) {
      sendText(res, 400, 'kiln: that request path does not parse');
      return;
    }
    if (options.token !== undefined) {
      const given = method === 'GET' && url.pathname === '/' ? url.searchParams.get('token') : null;
      if (given !== null) {
        signIn(req, res, options.token, given);
        return;
      }
      if (!admitted(options.token, req)) {
        sendText(
          res,
          401,
          'kiln: this dashboard needs its token: open /?token=<token> once, or send Authorization: Bearer <token>',
        );
        return;
      }
    }
    if (hasBody(req)) {
      sendText(res, 413, 'kiln: the dashboard reads no request bodies', { connection: 'close' });
      return;
    }
    const found = route(url.pathname);
    if (!found) {
      sendText(res, 404, `kiln: nothing at ${url.pathname.slice(0, 200)}`);
      return;
    }
    if (found.method !== method) {
      sendText(res, 405, `kiln: ${url.pathname} takes ${found.method} only`, { allow: found.method });
      return;
    }
    if (found.job !== undefined && !service.store.job(found.job)) {
      sendJson(res, 404, { error: `no job '${found.job}'` });
      return;
    }
    await found.handle(req, res);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    respond(req, res).catch((e: unknown) => {
      // A failure here is one request's, never the coordinator's.
      const message = e instanceof Error ? e.message : String(e);
      options.log?.(`dashboard: ${req.method} ${req.url?.slice(0, 200)} failed: ${message}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: message });
    });
  };
  return Object.assign(handler, {
    close() {
      feed.close();
      for (const end of [...streams]) end();
      streams.clear();
    },
  });
}

/**
 * `/?token=...`: a right token becomes a cookie and the browser is sent back to `/`, so the token
 * leaves the address bar (and the history, and anything a screenshot shows).
 */
function signIn(req: IncomingMessage, res: ServerResponse, token: string, given: string): void {
  if (!tokenMatches(token, given)) {
    sendText(res, 401, 'kiln: wrong token');
    return;
  }
  head(res, 303, { location: '/', 'set-cookie': signInCookie(token, req), 'cache-control': 'no-store' });
  res.end();
}

/** A page file; `no-cache` makes the browser ask again (cheaply), so a new version shows at once. */
function sendAsset(res: ServerResponse, file: Asset): void {
  head(res, 200, {
    'content-type': file.type,
    'content-length': file.body.length,
    'cache-control': 'no-cache',
  });
  res.end(file.body);
}

/** Whether a request declares a body: the dashboard has no use for one, so it reads none. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * A browser says where a POST comes from; one from another origin is refused, whatever cookie it
 * carries (SameSite=Strict already keeps the cookie off it; this holds for bearer tokens too).
 * A request with no Origin is not from a page: a script, which has the token itself.
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
