/**
 * What an answer (or its absence) means for one delivery, and when the next attempt is due.
 * Pure: the delivery thread applies it; the unit tests pin it.
 */

/** Backoff: 1 s doubling up to 10 min, each delay jittered down to half of it at random. */
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 10 * 60_000;
/** A Retry-After beyond this is taken as this (a receiver asking for a day is not waited on blindly). */
export const RETRY_AFTER_MAX_MS = 60 * 60_000;

export type Outcome =
  | { kind: 'delivered'; status: number }
  /** Try again later; `retryAfterMs` when the receiver said when (Retry-After). */
  | { kind: 'retry'; error: string; retryAfterMs: number | null }
  /** The receiver said no (a 4xx other than 408 and 429): failed at once, kept for a replay. */
  | { kind: 'failed'; error: string };

/** An answer as the sender saw it. */
export interface Answer {
  status: number;
  retryAfter?: string | null;
  location?: string | null;
  /** The start of the answer's body, for lastError. */
  snippet?: string;
}

/** Seconds or an HTTP date → milliseconds from now (null when absent or unreadable). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, RETRY_AFTER_MAX_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.min(Math.max(0, at - now), RETRY_AFTER_MAX_MS);
}

/** A redirect target without credentials or query values: it is shown in lastError. */
function shownLocation(location: string | null | undefined): string {
  if (!location) return 'no Location';
  try {
    const u = new URL(location, 'http://relative.invalid');
    const where = u.host === 'relative.invalid' ? u.pathname : `${u.protocol}//${u.host}${u.pathname}`;
    return `to ${where}${u.search ? '?…' : ''}`;
  } catch {
    return 'to an unreadable Location';
  }
}

export function classify(a: Answer): Outcome {
  const { status } = a;
  const said = a.snippet ? `: ${a.snippet}` : '';
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status >= 300 && status < 400)
    return {
      kind: 'retry',
      error: `HTTP ${status}: redirect ${shownLocation(a.location)} not followed (point the endpoint at the final URL)`,
      retryAfterMs: null,
    };
  if (status >= 400 && status < 500 && status !== 408 && status !== 429)
    return { kind: 'failed', error: `HTTP ${status}${said}` };
  return { kind: 'retry', error: `HTTP ${status}${said}`, retryAfterMs: parseRetryAfter(a.retryAfter) };
}

/** The delay after the `attempts`-th failed attempt (1, 2, …), jittered into [d/2, d]. */
export function backoffMs(attempts: number, random: () => number = Math.random): number {
  const d = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, Math.min(attempts - 1, 30)));
  return Math.round(d / 2 + (random() * d) / 2);
}

/**
 * After a failed attempt (`attempts` counts it): when to try again, or null when the event has
 * been retried for maxAge since it was queued (then it is marked failed). The last attempt is
 * made at the deadline itself, not skipped because the backoff would overshoot it.
 */
export function nextAttemptAt(
  o: { now: number; attempts: number; queuedAt: number; maxAgeMs: number; retryAfterMs: number | null },
  random: () => number = Math.random,
): number | null {
  const deadline = o.queuedAt + o.maxAgeMs;
  if (o.now >= deadline) return null;
  const delay = o.retryAfterMs ?? backoffMs(o.attempts, random);
  return Math.min(o.now + delay, deadline);
}

/** A node network error, told without addresses' credentials (there are none in it) or the body. */
export function describeNetworkError(err: NodeJS.ErrnoException, timeoutMs: number): string {
  switch (err.code) {
    case 'TM_TIMEOUT':
      return `no answer within ${timeoutMs} ms`;
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EPIPE':
      return 'connection closed while sending';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found (DNS)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return err.code ? `network error ${err.code}` : `network error: ${err.message}`;
  }
}
