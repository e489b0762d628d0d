import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { bearerToken, tokenMatches } from '../net/token.js';

/** The cookie a browser keeps the token in, once it has opened `/?token=...`. */
export const TOKEN_COOKIE = 'kiln_token';

/**
 * The token a request presents: `Authorization: Bearer` (scripts, curl) or else the cookie (the
 * page, its fetches and its event stream, which cannot set headers on an EventSource).
 */
export function presentedToken(req: IncomingMessage): string | undefined {
  return bearerToken(req) ?? cookie(req.headers.cookie, TOKEN_COOKIE);
}

/** Whether the request may see the dashboard: always when no token is set (loopback only). */
export function admitted(token: string | undefined, req: IncomingMessage): boolean {
  return token === undefined || tokenMatches(token, presentedToken(req));
}

/**
 * The Set-Cookie value that signs a browser in. HttpOnly keeps it from scripts, SameSite=Strict
 * keeps other sites from making the browser send it (so a page elsewhere cannot cancel jobs), and
 * over TLS it is Secure. It lasts the browser session: no expiry is set.
 */
export function signInCookie(token: string, req: IncomingMessage): string {
  const secure = (req.socket as Partial<TLSSocket>).encrypted === true ? '; Secure' : '';
  return `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/${secure}`;
}

/** One cookie's value from a Cookie header; undefined if absent or not decodable. */
export function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at < 0 || part.slice(0, at).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}
