import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The key a request presents: `Authorization: Bearer KEY`, or `?key=KEY` (TURN REST draft, Janus). */
export function presentedKey(authorization: string | undefined, queryKey: unknown): string | null {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (bearer) return bearer[1];
  return typeof queryKey === 'string' && queryKey.length > 0 ? queryKey : null;
}

/** Compare against every configured key in constant time (hashing first equalises lengths). */
export function keyMatches(presented: string, keys: readonly string[] | readonly Buffer[]): boolean {
  const p = digest(presented);
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(p, typeof k === 'string' ? digest(k) : k) || ok;
  return ok;
}

/** Middleware: with no keys configured every request passes (loopback-only by config rule). */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  const digests = keys.map(digest);
  return (req, res, next) => {
    if (digests.length === 0) return next();
    const presented = presentedKey(req.get('authorization'), req.query.key);
    if (presented && keyMatches(presented, digests)) return next();
    res.status(401).set('WWW-Authenticate', 'Bearer').json({ type: 'error', code: 'unauthorized', error: 'a valid API key is required' });
  };
}
