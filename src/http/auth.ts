import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { sendJson } from './respond.js';

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

/** String equality in constant time for a given `known`: no early exit, time set by known.length. */
export function sameString(presented: string, known: string): boolean {
  let diff = presented.length ^ known.length;
  // Past presented's end charCodeAt gives NaN, which `^` turns into 0: the lengths differ then anyway.
  for (let i = 0; i < known.length; i++) diff |= presented.charCodeAt(i) ^ known.charCodeAt(i);
  return diff === 0;
}

/**
 * Whether a request presents an accepted key, from its Authorization header and `key` query
 * value. With no keys configured every request passes (loopback-only by config rule).
 *
 * A key is checked with keyMatches (sha256 + timingSafeEqual: the costliest step of serving a
 * credential). The string a connection got accepted is remembered for that connection
 * only, so the next requests on the keep-alive connection compare with it (sameString, also
 * constant time) instead of hashing again: a client is only ever compared with what it sent itself.
 */
export type ApiKeyCheck = (authorization: string | undefined, queryKey: unknown, connection?: object) => boolean;

export function apiKeyCheck(keys: readonly string[]): ApiKeyCheck {
  const digests = keys.map(digest);
  const accepted = new WeakMap<object, string>();
  return (authorization, queryKey, connection) => {
    if (digests.length === 0) return true;
    const presented = presentedKey(authorization, queryKey);
    if (presented === null) return false;
    const known = connection && accepted.get(connection);
    if (known !== undefined && sameString(presented, known)) return true;
    if (!keyMatches(presented, digests)) return false;
    if (connection) accepted.set(connection, presented);
    return true;
  };
}

/** The 401 answer (plain node:http, so the credential fast path shares it). */
export function sendUnauthorized(res: ServerResponse): void {
  sendJson(
    res,
    401,
    { type: 'error', code: 'unauthorized', error: 'a valid API key is required' },
    { 'WWW-Authenticate': 'Bearer' },
  );
}

/** Middleware form of an apiKeyCheck, for the express routes (same 401 answer as the fast path). */
export function apiKeyMiddleware(check: ApiKeyCheck): RequestHandler {
  return (req, res, next) =>
    check(req.get('authorization'), req.query.key, req.socket) ? next() : sendUnauthorized(res);
}
