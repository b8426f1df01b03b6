import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestHandler } from 'express';
import { API_SCOPES, keyNameOf, type ApiKeyConfig, type ApiScope } from '../config/schema.js';
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

/** A configured key as the server checks it: its name (logs, metrics), SHA-256 and scopes. */
export interface ApiKey {
  readonly name: string;
  readonly digest: Buffer;
  readonly scopes: ReadonlySet<ApiScope>;
  /** Accepted only over a connection whose client certificate verified (mutual TLS). */
  readonly requireClientCert: boolean;
}

const ALL_SCOPES: ReadonlySet<ApiScope> = new Set(API_SCOPES);

/** Who a request is when no key is configured (loopback only, by config rule): every scope. */
export const ANONYMOUS: ApiKey = {
  name: 'anonymous',
  digest: Buffer.alloc(32),
  scopes: ALL_SCOPES,
  requireClientCert: false,
};

/** http.apiKeys as checked: a string has every scope and the name keyN (its position, 1-based). */
export function apiKeysFrom(keys: readonly ApiKeyConfig[]): ApiKey[] {
  return keys.map((k, i) =>
    typeof k === 'string'
      ? { name: keyNameOf(k, i), digest: digest(k), scopes: ALL_SCOPES, requireClientCert: false }
      : {
          name: k.name,
          digest: k.key !== null ? digest(k.key) : Buffer.from(k.sha256!, 'hex'),
          scopes: new Set(k.scopes),
          requireClientCert: k.requireClientCert,
        },
  );
}

/** The configured key a request presents (ANONYMOUS when none is configured), or null. */
export type KeyResolver = (authorization: string | undefined, queryKey: unknown, connection?: object) => ApiKey | null;

const clientCertVerified = (connection?: object) => (connection as TLSSocket | undefined)?.authorized === true;

/**
 * Which configured key a request presents, from its Authorization header and `key` query value.
 *
 * The presented key's SHA-256 is compared with every configured digest (timingSafeEqual, no
 * early exit: the costliest step of serving a credential). The string a connection got accepted
 * is remembered for that connection only, so the next requests on the keep-alive connection
 * compare with it (sameString, also constant time) instead of hashing again: a client is only
 * ever compared with what it sent itself. A `requireClientCert` key is refused on a connection
 * without a verified client certificate.
 */
export function apiKeyResolver(keys: readonly ApiKey[]): KeyResolver {
  const accepted = new WeakMap<object, { presented: string; key: ApiKey }>();
  return (authorization, queryKey, connection) => {
    if (keys.length === 0) return ANONYMOUS;
    const presented = presentedKey(authorization, queryKey);
    if (presented === null) return null;
    const known = connection && accepted.get(connection);
    if (known !== undefined && sameString(presented, known.presented)) return known.key;
    const p = digest(presented);
    let match: ApiKey | null = null;
    for (const k of keys) if (timingSafeEqual(p, k.digest)) match = k;
    if (match === null || (match.requireClientCert && !clientCertVerified(connection))) return null;
    if (connection) accepted.set(connection, { presented, key: match });
    return match;
  };
}

/** Whether a request presents an accepted key (any scope). With no keys configured every request passes. */
export type ApiKeyCheck = (authorization: string | undefined, queryKey: unknown, connection?: object) => boolean;

export function apiKeyCheck(keys: readonly ApiKeyConfig[]): ApiKeyCheck {
  const resolve = apiKeyResolver(apiKeysFrom(keys));
  return (authorization, queryKey, connection) => resolve(authorization, queryKey, connection) !== null;
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

/** The 403 answer to a valid key without the route's scope. */
export function sendForbidden(res: ServerResponse, scope: ApiScope): void {
  sendJson(res, 403, { type: 'error', code: 'forbidden', scope, error: `this API key lacks the "${scope}" scope` });
}

const KEY_NAME = Symbol('turn-monitor.keyName');
type Named = IncomingMessage & { [KEY_NAME]?: string };

/** The name of the key a request was accepted (or refused for its scope) with; `none` when it presented none. */
export const requestKeyName = (req: IncomingMessage): string => (req as Named)[KEY_NAME] ?? 'none';

/**
 * One scope's gate: answers 401 (no or wrong key) or 403 (the key lacks `scope`) itself and
 * returns false, else notes the key's name on the request and returns true.
 */
export type ScopeGate = (req: IncomingMessage, res: ServerResponse, queryKey: unknown) => boolean;

export function scopeGate(resolve: KeyResolver, scope: ApiScope): ScopeGate {
  return (req, res, queryKey) => {
    const key = resolve(req.headers.authorization, queryKey, req.socket);
    if (key === null) {
      sendUnauthorized(res);
      return false;
    }
    (req as Named)[KEY_NAME] = key.name;
    if (!key.scopes.has(scope)) {
      sendForbidden(res, scope);
      return false;
    }
    return true;
  };
}

/** A boolean ApiKeyCheck as a gate (401 only): for handlers built without scopes. */
export function checkGate(check: ApiKeyCheck): ScopeGate {
  return (req, res, queryKey) => {
    if (check(req.headers.authorization, queryKey, req.socket)) return true;
    sendUnauthorized(res);
    return false;
  };
}

/** Express middleware that lets only keys with `scope` through; `scope` is readable for route listings. */
export type ScopedMiddleware = RequestHandler & { readonly scope: ApiScope };

export function scopeMiddleware(resolve: KeyResolver, scope: ApiScope): ScopedMiddleware {
  const gate = scopeGate(resolve, scope);
  const mw: RequestHandler = (req, res, next) => {
    if (gate(req, res, req.query.key)) next();
  };
  return Object.assign(mw, { scope });
}

/** Middleware form of an apiKeyCheck, for express routes (same 401 answer as the fast path). */
export function apiKeyMiddleware(check: ApiKeyCheck): RequestHandler {
  return (req, res, next) =>
    check(req.get('authorization'), req.query.key, req.socket) ? next() : sendUnauthorized(res);
}
