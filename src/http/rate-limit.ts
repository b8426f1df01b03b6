// The credential route's rate limit, written here instead of taken from express-rate-limit:
// that package is express middleware, and GET /turncredential is answered on bare node:http
// ahead of express (see routes/credentials.ts) because the credential_api benchmark's goal needs
// it. This keeps express-rate-limit's semantics (MemoryStore's fixed window from a client's first
// hit, its client key via ipKeyGenerator, its draft-7 headers), so clients see no difference,
// and it has no sweep timer of its own: an idle monitor runs none. One answer for 429 below.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { sendJson } from './respond.js';

/** One request's standing against its client's window. */
export interface RateLimitInfo {
  limited: boolean;
  limit: number;
  remaining: number;
  /** Whole seconds until the client's window resets (≥ 0). */
  resetSeconds: number;
  windowSeconds: number;
}

/**
 * A per-key fixed-window counter, the semantics of express-rate-limit's MemoryStore: a key's
 * window starts at its first hit and lasts windowMs; every hit counts, refused ones too.
 * Expired keys are swept at most once per window, on a hit: no timer to stop.
 */
export class FixedWindowLimiter {
  private readonly clients = new Map<string, { hits: number; resetAt: number }>();
  private nextSweep: number;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.nextSweep = now() + windowMs;
  }

  hit(key: string): RateLimitInfo {
    const now = this.now();
    if (now >= this.nextSweep) this.sweep(now);
    let client = this.clients.get(key);
    if (!client || client.resetAt <= now) {
      client = { hits: 0, resetAt: now + this.windowMs };
      this.clients.set(key, client);
    }
    client.hits++;
    return {
      limited: client.hits > this.limit,
      limit: this.limit,
      remaining: Math.max(this.limit - client.hits, 0),
      resetSeconds: Math.max(0, Math.ceil((client.resetAt - now) / 1000)),
      windowSeconds: Math.ceil(this.windowMs / 1000),
    };
  }

  /** Keys currently tracked (for tests). */
  get size(): number {
    return this.clients.size;
  }

  private sweep(now: number): void {
    for (const [key, client] of this.clients) if (client.resetAt <= now) this.clients.delete(key);
    this.nextSweep = now + this.windowMs;
  }
}

/**
 * IETF draft-7 headers as express-rate-limit's `standardHeaders: 'draft-7'` writes them, and
 * Retry-After when refused: a fresh object the caller may add its own headers to.
 */
export function rateLimitHeaders(info: RateLimitInfo): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'RateLimit-Policy': `${info.limit};w=${info.windowSeconds}`,
    RateLimit: `limit=${info.limit}, remaining=${info.remaining}, reset=${info.resetSeconds}`,
  };
  if (info.limited) headers['Retry-After'] = String(info.resetSeconds);
  return headers;
}

/** The one 429 answer: draft-7 headers, Retry-After, and the API's error body. */
export function sendRateLimited(res: ServerResponse, info: RateLimitInfo, message: string): void {
  sendJson(res, 429, { type: 'error', code: 'rate_limited', error: message }, rateLimitHeaders(info));
}
