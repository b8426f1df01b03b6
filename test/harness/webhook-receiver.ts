import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Harness } from './harness.js';
import { freePort } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';

/** One request the receiver got, verified with the `standardwebhooks` package as receivers do. */
export interface Delivery {
  id: string;
  timestamp: string;
  signature: string;
  contentType: string | undefined;
  event: { type: string; id: string; timestamp: string; hostId: string; data: Record<string, any> };
  raw: string;
  receivedAt: number;
  /** The status the receiver answered. */
  status: number;
}

/** What to answer: a status (with headers), or 'hang' (never answer). */
export type Answer = number | { status: number; headers?: Record<string, string> } | 'hang';

export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/**
 * A real HTTP webhook receiver (bare node:http) on a loopback port: verifies every request's
 * signature with `standardwebhooks` (401 when it fails), answers what `respond` says (default
 * 200), records everything; can go down (connections refused) and come back on the same port.
 */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  rejected = 0;
  /** Called per verified request with how often this webhook-id was seen before it. */
  respond: (d: Delivery, seenBefore: number) => Answer = () => 200;
  private server: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly verifier: Webhook;
  private readonly hanging = new Set<http.ServerResponse>();

  private constructor(
    readonly port: number,
    readonly secret: string,
    readonly path: string,
  ) {
    this.verifier = new Webhook(secret);
  }

  static async start(h: Harness, opts: { secret?: string; path?: string } = {}): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(await freePort(), opts.secret ?? newSecret(), opts.path ?? '/hooks/turn');
    await r.up();
    h.onCleanup(() => r.close());
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}${this.path}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const headers = req.headers as Record<string, string>;
      let event: Delivery['event'];
      try {
        event = this.verifier.verify(raw, headers) as Delivery['event'];
      } catch {
        this.rejected++;
        res.writeHead(401).end('bad signature');
        return;
      }
      const id = headers['webhook-id'];
      const d: Delivery = {
        id,
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        contentType: headers['content-type'],
        event,
        raw,
        receivedAt: Date.now(),
        status: 0,
      };
      const answer = this.respond(d, this.deliveries.filter((x) => x.id === id).length);
      this.deliveries.push(d);
      if (answer === 'hang') {
        this.hanging.add(res);
        return;
      }
      const { status, headers: extra } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
      d.status = status;
      res.writeHead(status, extra).end(status < 300 ? 'ok' : 'no');
    });
  }

  /** Listen (again) on the port. */
  async up(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Stop listening and drop every connection: the monitor's requests are refused. */
  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  close(): Promise<void> {
    return this.down();
  }

  /** Deliveries answered 2xx. */
  accepted(): Delivery[] {
    return this.deliveries.filter((d) => d.status >= 200 && d.status < 300);
  }

  /** Distinct webhook-ids answered 2xx. */
  acceptedIds(): Set<string> {
    return new Set(this.accepted().map((d) => d.id));
  }

  ofType(type: string): Delivery[] {
    return this.accepted().filter((d) => d.event.type === type);
  }

  waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
    return waitUntil(what, async () => check(), timeoutMs, 25);
  }
}
