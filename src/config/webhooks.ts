import { z } from 'zod';

// The `webhooks` section of the config: endpoints, their secrets and the events they take. Kept
// beside schema.ts (the config imports nothing else of ours); src/webhooks reads the event types.

/** Every event type a webhook can carry, in the order the README lists them. */
export const WEBHOOK_EVENT_TYPES = [
  'allocation.started',
  'allocation.ended',
  'client.revoked',
  'client.unrevoked',
  'credential.revoked',
  'host.draining',
  'host.drained',
  'turnserver.exited',
  'turnserver.ready',
  'certificate.reloaded',
  'certificate.expiring',
  'quota.warning',
  'quota.exceeded',
  'quota.reset',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Whether an `events` entry selects `type`: the type itself, `prefix.*`, or `*`. */
export function patternMatches(pattern: string, type: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

/** The Standard Webhooks secret form: `whsec_` and the base64 of the key (at least 16 bytes). */
export function isWebhookSecret(s: string): boolean {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(s);
  if (!m || m[1].length % 4 !== 0) return false;
  return Buffer.from(m[1], 'base64').length >= 16;
}

export const WEBHOOK_SECRET_RULE =
  'must be a Standard Webhooks secret: whsec_ followed by the base64 of 16 or more bytes';

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** An endpoint as shown (health, CLI, metrics, the key in usage.db): no user:password, no query values. */
export function endpointName(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
}

const endpoint = z
  .strictObject({
    url: z.string().refine(isHttpUrl, { message: 'must be an http:// or https:// URL' }),
    // Messages never echo the value: it is a secret.
    secret: z.string().refine(isWebhookSecret, { message: WEBHOOK_SECRET_RULE }).nullable().default(null),
    // A file holding the secret (the same form), read once at start.
    secretFile: z.string().min(1).nullable().default(null),
    events: z
      .array(
        z.string().refine((p) => WEBHOOK_EVENT_TYPES.some((t) => patternMatches(p, t)), {
          message: `must be an event type (${WEBHOOK_EVENT_TYPES.join(', ')}), a prefix such as "allocation.*", or "*"`,
        }),
      )
      .min(1)
      .default(['*']),
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  })
  .refine((e) => (e.secret === null) !== (e.secretFile === null), {
    message: 'needs exactly one of secret or secretFile',
    path: ['secret'],
  });

export const webhooksSchema = z
  .strictObject({
    endpoints: z.array(endpoint).default([]),
    // How long an event is retried before it is marked failed.
    maxAgeHours: z.number().positive().max(720).default(24),
    // How long failed events are kept (for `turn-monitor webhooks --replay-failed`).
    retentionDays: z.number().int().positive().default(7),
  })
  .superRefine((w, ctx) => {
    const seen = new Map<string, number>();
    w.endpoints.forEach((e, i) => {
      if (!isHttpUrl(e.url)) return;
      const name = endpointName(e.url);
      const first = seen.get(name);
      if (first === undefined) seen.set(name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'url'],
          message: `the same endpoint as webhooks.endpoints.${first} (endpoints are told apart by scheme, host, port and path)`,
        });
    });
  });
