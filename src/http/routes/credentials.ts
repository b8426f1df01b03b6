// GET /turncredential is what signalling servers call on every client connect, so it is served
// on bare node:http ahead of express (HttpServer.addFastRoute), with its own rate limiter
// (../rate-limit.ts): express's routing and decoration cost several times the answer itself
// (README, Performance: credential_api). The answers are express's byte for byte, and 401 and 429
// each come from one function (sendUnauthorized, sendRateLimited) that express routes share.
import { parse as parseQuery, type ParsedUrlQuery } from 'node:querystring';
import { ipKeyGenerator } from 'express-rate-limit';
import { checkGate, type ApiKeyCheck, type ScopeGate } from '../auth.js';
import type { FastHandler, RouteInstaller } from '../http-server.js';
import { FixedWindowLimiter, rateLimitHeaders, sendRateLimited } from '../rate-limit.js';
import { sendJson, sendJsonText } from '../respond.js';
import type { Logger } from '../../log/logger.js';
import type { Credentials } from '../../credentials/credentials.js';

// The client id becomes part of the TURN username and of usage accounting keys: '%' crashes
// coturn 4.6.1 with redis-statsdb on, '/' and ':' break the topic and REST username parsing.
export const CLIENT_ID = /^[A-Za-z0-9._-]{1,64}$/;

const error = (code: string, message: string) => ({ type: 'error', code, error: message });

const NO_QUERY: ParsedUrlQuery = Object.freeze(parseQuery(''));

/** The query string of a request URL, parsed as express 5's default ('simple') query parser does. */
function queryOf(url: string | undefined): ParsedUrlQuery {
  const start = url ? url.indexOf('?') : -1;
  if (start < 0) return NO_QUERY;
  const end = url!.indexOf('#', start);
  return parseQuery(url!.slice(start + 1, end < 0 ? undefined : end));
}

/** The rate limit key of a client address, as express-rate-limit's: IPv4-mapped as IPv4, IPv6 by /56. */
export const clientKey = (address = '') => (address.includes(':') ? ipKeyGenerator(address) : address);

export interface CredentialHandlerOptions {
  /** The credentials scope's gate (HttpServer.tools.gate('credentials')): 401 and 403 answered by it. */
  gate?: ScopeGate;
  /** Without a gate: a plain key check (any key), 401 only. */
  authorized?: ApiKeyCheck;
  limitPerMinute: number;
  /** Clock of the rate limiter (tests). */
  now?: () => number;
  /** While the host drains: seconds for Retry-After (503, no credential), else null. */
  unavailable?: () => number | null;
}

/**
 * GET /turncredential on bare node:http. In order: API key (401; 403 without the credentials scope), per-client-IP limit of
 * limitPerMinute per 60 s window with draft-7 RateLimit headers (429), `?user=` check (400),
 * draining (503 with Retry-After), a revoked client (403), credential (503 when none is valid),
 * `Cache-Control: no-store`.
 */
export function credentialHandler(
  credentials: Pick<Credentials, 'issueJson'> & Partial<Pick<Credentials, 'revoked'>>,
  options: CredentialHandlerOptions,
): FastHandler {
  const gate = options.gate ?? checkGate(options.authorized ?? (() => true));
  const limiter = new FixedWindowLimiter(options.limitPerMinute, 60_000, options.now);
  return (req, res) => {
    const query = queryOf(req.url);
    if (!gate(req, res, query.key)) return;
    const limit = limiter.hit(clientKey(req.socket.remoteAddress));
    if (limit.limited) return sendRateLimited(res, limit, 'too many credential requests');
    const rate = rateLimitHeaders(limit);
    const user = query.user;
    if (user !== undefined && (typeof user !== 'string' || !CLIENT_ID.test(user))) {
      return sendJson(res, 400, error('bad_user', 'user must be 1-64 characters of A-Z a-z 0-9 . _ -'), rate);
    }
    const retryAfter = options.unavailable?.() ?? null;
    if (retryAfter !== null) {
      rate['Retry-After'] = String(retryAfter);
      return sendJson(res, 503, error('draining', 'this host is draining: ask another'), rate);
    }
    if (user !== undefined && credentials.revoked?.(user))
      return sendJson(res, 403, error('revoked', 'this client is revoked'), rate);
    const credential = credentials.issueJson(user ?? null);
    if (credential === null) return sendJson(res, 503, error('unavailable', 'no valid credential: see /health'), rate);
    rate['Cache-Control'] = 'no-store';
    sendJsonText(res, 200, credential, rate);
  };
}

/** POST /turncredential/rotate (express: rare, not worth a fast path). */
export function rotateRoute(credentials: Credentials, log: Logger): RouteInstaller {
  return (router, { guard }) => {
    router.post('/turncredential/rotate', guard('control'), async (_req, res) => {
      try {
        await credentials.rotateNow();
        log.warn({ event: 'rotated-on-request' }, 'credential rotated on request');
        res.json({ type: 'result', code: 'ok', rotated: true });
      } catch (err) {
        log.error({ event: 'rotate-failed', err: (err as Error).message }, 'rotation on request failed');
        res.status(502).json(error('rotate_failed', 'rotation failed: see the monitor log'));
      }
    });
  };
}
