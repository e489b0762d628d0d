import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * The shared secret every connection presents at the HTTP upgrade, before a single message is
 * parsed: `Authorization: Bearer <token>`. Compared in constant time (over SHA-256 digests, so
 * the comparison does not even reveal the token's length).
 */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an upgrade request, if it has one. */
export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer (.+)$/.exec(header);
  return match?.[1];
}

/** The header a client sends to present `token`. */
export const authorization = (token: string): Record<string, string> => ({
  authorization: `Bearer ${token}`,
});
