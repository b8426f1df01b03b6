import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { classify, describeNetworkError, type Outcome } from './retry-policy.js';

/** Requests in flight per endpoint (and the keep-alive sockets it may hold). */
export const MAX_IN_FLIGHT = 8;
/** Characters of a non-2xx answer's body kept for lastError. */
const SNIPPET_CHARS = 160;

export interface EndpointTarget {
  url: string;
  /** whsec_… */
  secret: string;
  timeoutMs: number;
  userAgent: string;
}

/**
 * One endpoint's HTTP side: a keep-alive agent (at most MAX_IN_FLIGHT sockets), the Standard
 * Webhooks signer with its secret, and one POST per event. Redirects are never followed (node:http
 * does not); the whole request, answer included, has `timeoutMs`.
 */
export class EndpointClient {
  private readonly agent: http.Agent;
  private readonly signer: Webhook;
  private readonly url: URL;
  private readonly auth: string | undefined;
  private readonly requests = new Set<http.ClientRequest>();

  constructor(private readonly target: EndpointTarget) {
    this.url = new URL(target.url);
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    // Idle sockets are closed before a typical server's keep-alive timeout (node's: 5 s) closes them.
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: MAX_IN_FLIGHT,
      maxFreeSockets: MAX_IN_FLIGHT,
      timeout: 4000,
    });
    this.signer = new Webhook(target.secret);
    this.auth =
      this.url.username || this.url.password
        ? `${decodeURIComponent(this.url.username)}:${decodeURIComponent(this.url.password)}`
        : undefined;
  }

  /** Send one event (its id and JSON body): the outcome, never a rejection. */
  async deliver(id: string, body: string, now = new Date()): Promise<Outcome> {
    const payload = Buffer.from(body);
    const headers = {
      'content-type': 'application/json',
      'content-length': String(payload.length),
      'user-agent': this.target.userAgent,
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': this.signer.sign(id, now, payload),
    };
    try {
      return await this.post(headers, payload, true);
    } catch (err) {
      return {
        kind: 'retry',
        error: describeNetworkError(err as NodeJS.ErrnoException, this.target.timeoutMs),
        retryAfterMs: null,
      };
    }
  }

  private post(headers: Record<string, string>, payload: Buffer, mayRepeat: boolean): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const lib = this.url.protocol === 'https:' ? https : http;
      const req = lib.request({
        protocol: this.url.protocol,
        hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
        port: this.url.port || undefined,
        path: `${this.url.pathname}${this.url.search}`,
        method: 'POST',
        agent: this.agent,
        auth: this.auth,
        headers,
      });
      this.requests.add(req);
      let settled = false;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(Object.assign(new Error('timeout'), { code: 'TM_TIMEOUT' }));
      }, this.target.timeoutMs);
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.requests.delete(req);
        fn();
      };
      const fail = (err: NodeJS.ErrnoException) =>
        settle(() => {
          const e = timedOut ? Object.assign(new Error('timeout'), { code: 'TM_TIMEOUT' }) : err;
          // A kept-alive socket the server closed just as we reused it: send again at once, once.
          if (mayRepeat && !timedOut && req.reusedSocket && e.code === 'ECONNRESET')
            this.post(headers, payload, false).then(resolve, reject);
          else reject(e);
        });
      req.on('error', fail);
      req.on('response', (res) => {
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        let snippet = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (!ok && snippet.length < SNIPPET_CHARS) snippet += chunk.slice(0, SNIPPET_CHARS - snippet.length);
        });
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
        });
        res.on('end', () =>
          settle(() =>
            resolve(
              classify({
                status: res.statusCode ?? 0,
                retryAfter: res.headers['retry-after'] ?? null,
                location: res.headers.location ?? null,
                snippet: snippet.replace(/\s+/g, ' ').trim(),
              }),
            ),
          ),
        );
      });
      req.end(payload);
    });
  }

  /** Abort whatever is in flight (a stop past its deadline) and close the sockets. */
  close(): void {
    for (const req of this.requests) req.destroy();
    this.requests.clear();
    this.agent.destroy();
  }
}
