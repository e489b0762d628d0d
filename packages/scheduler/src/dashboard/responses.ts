import type { ServerResponse } from 'node:http';

/**
 * Headers every dashboard response carries. The policy allows nothing but this origin, so the page
 * can only run the scripts it is served from here (no inline script, no CDN), cannot be framed
 * (clickjacking the Cancel button), and the browser never second-guesses a content type.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** Writes the status and headers, the security headers included. */
export function head(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number> = {},
): void {
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers });
}

/** A one-line plain-text answer: what errors say to a person or a script. */
export function sendText(
  res: ServerResponse,
  status: number,
  line: string,
  headers: Record<string, string> = {},
): void {
  const body = `${line}\n`;
  head(res, status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

/** A JSON answer; never cached, since it says how things are now. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  head(res, status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
