import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Change, LiveFeed } from './live-feed.js';
import { head } from './responses.js';

/** A comment line this often keeps idle proxies from closing the stream, and finds dead peers. */
const KEEPALIVE_MILLIS = 15_000;
/** A page that reads slower than this much backlog is cut off; its EventSource reconnects. */
const MAX_BACKLOG_BYTES = 256 * 1024;

/**
 * GET /api/live: Server-Sent Events, one `data:` line of JSON (a Change) per change. SSE rather
 * than a WebSocket: one way is all the page needs, the browser reconnects by itself, and the
 * cookie rides along as on any request. Returns a function that ends the stream.
 */
export function openEventStream(req: IncomingMessage, res: ServerResponse, feed: LiveFeed): () => void {
  head(res, 200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  // After a drop, the browser tries again in 2 s; the page refetches everything when it does.
  res.write('retry: 2000\n\n');
  const write = (text: string) => {
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > MAX_BACKLOG_BYTES) {
      end();
      return;
    }
    res.write(text);
  };
  const unsubscribe = feed.subscribe((change: Change) => write(`data: ${JSON.stringify(change)}\n\n`));
  const keepalive = setInterval(() => write(': keepalive\n\n'), KEEPALIVE_MILLIS);
  keepalive.unref();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepalive);
    unsubscribe();
    if (!res.writableEnded) res.end();
  };
  req.on('close', end);
  res.on('close', end);
  res.on('error', end);
  return end;
}
