import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { endpointName, isWebhookSecret, patternMatches } from '../../src/config/webhooks.js';
import {
  backoffMs,
  BACKOFF_MAX_MS,
  classify,
  nextAttemptAt,
  parseRetryAfter,
  RETRY_AFTER_MAX_MS,
} from '../../src/webhooks/retry-policy.js';

const SECRET = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;

test('answers: 2xx delivered; 408, 429, 5xx and 3xx retried; any other 4xx failed at once', () => {
  assert.equal(classify({ status: 200 }).kind, 'delivered');
  assert.equal(classify({ status: 204 }).kind, 'delivered');
  for (const status of [408, 429, 500, 502, 503, 504]) assert.equal(classify({ status }).kind, 'retry', `${status}`);
  for (const status of [400, 401, 403, 404, 410, 413, 422])
    assert.equal(classify({ status }).kind, 'failed', `${status}`);
  const redirect = classify({ status: 301, location: 'https://user:pw@new.example/hook?token=abc' });
  assert.equal(redirect.kind, 'retry');
  assert.match(
    (redirect as { error: string }).error,
    /^HTTP 301: redirect to https:\/\/new\.example\/hook\?… not followed/,
  );
  assert.equal(
    (redirect as { error: string }).error.includes('abc') || (redirect as { error: string }).error.includes('pw'),
    false,
  );
  assert.deepEqual(classify({ status: 410, snippet: 'gone for good' }), {
    kind: 'failed',
    error: 'HTTP 410: gone for good',
  });
  assert.deepEqual(classify({ status: 503, retryAfter: '7' }), {
    kind: 'retry',
    error: 'HTTP 503',
    retryAfterMs: 7000,
  });
});

test('Retry-After: seconds or an HTTP date, capped; garbage ignored', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('999999', now), RETRY_AFTER_MAX_MS);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

test('backoff: 1 s doubling to 10 min, jittered into [d/2, d]', () => {
  assert.equal(
    backoffMs(1, () => 1),
    1000,
  );
  assert.equal(
    backoffMs(1, () => 0),
    500,
  );
  assert.equal(
    backoffMs(2, () => 1),
    2000,
  );
  assert.equal(
    backoffMs(4, () => 1),
    8000,
  );
  assert.equal(
    backoffMs(11, () => 1),
    BACKOFF_MAX_MS,
  );
  assert.equal(
    backoffMs(60, () => 1),
    BACKOFF_MAX_MS,
  );
  for (let i = 0; i < 100; i++) {
    const d = backoffMs(3);
    assert.ok(d >= 2000 && d <= 4000);
  }
});

test('retried until maxAge after it was queued; the last attempt at the deadline; then failed', () => {
  const queuedAt = 0;
  const maxAgeMs = 3_600_000;
  const at = (now: number, attempts: number, retryAfterMs: number | null = null) =>
    nextAttemptAt({ now, attempts, queuedAt, maxAgeMs, retryAfterMs }, () => 1);
  assert.equal(at(0, 1), 1000);
  assert.equal(at(10_000, 3), 14_000);
  assert.equal(at(10_000, 3, 60_000), 70_000, 'Retry-After wins over the backoff');
  assert.equal(at(maxAgeMs - 1000, 20), maxAgeMs, 'clamped to the deadline');
  assert.equal(at(maxAgeMs, 21), null, 'given up');
});

test('config: defaults, patterns, secrets in whsec_ form, one of secret or secretFile; errors name the key, never the value', () => {
  assert.deepEqual(buildConfig({}, '/x').webhooks, { endpoints: [], maxAgeHours: 24, retentionDays: 7 });
  const c = buildConfig(
    { webhooks: { endpoints: [{ url: 'https://hooks.example/turn', secretFile: 'secret' }] } },
    '/etc/tm',
  );
  assert.deepEqual(c.webhooks.endpoints[0], {
    url: 'https://hooks.example/turn',
    secret: null,
    secretFile: '/etc/tm/secret',
    events: ['*'],
    timeoutMs: 5000,
  });
  assert.ok(isWebhookSecret(SECRET));
  assert.equal(isWebhookSecret('whsec_c2hvcnQ='), false, 'fewer than 16 bytes');
  assert.equal(isWebhookSecret(SECRET.slice(6)), false, 'no prefix');
  assert.ok(patternMatches('allocation.*', 'allocation.ended') && !patternMatches('allocation.*', 'host.drained'));
  assert.ok(patternMatches('*', 'host.drained') && patternMatches('host.drained', 'host.drained'));
  assert.equal(endpointName('https://u:p@h.example:8443/a/b?token=x'), 'https://h.example:8443/a/b?…');

  const bad: [unknown, RegExp][] = [
    [
      { endpoints: [{ url: 'ftp://h/x', secret: SECRET }] },
      /"webhooks\.endpoints\.0\.url": must be an http:\/\/ or https:\/\/ URL/,
    ],
    [{ endpoints: [{ url: 'not a url', secret: SECRET }] }, /"webhooks\.endpoints\.0\.url"/],
    [
      { endpoints: [{ url: 'http://h/x', secret: 'hunter2hunter2hunter2' }] },
      /"webhooks\.endpoints\.0\.secret": must be a Standard Webhooks secret/,
    ],
    [
      { endpoints: [{ url: 'http://h/x' }] },
      /"webhooks\.endpoints\.0\.secret": needs exactly one of secret or secretFile/,
    ],
    [
      { endpoints: [{ url: 'http://h/x', secret: SECRET, events: ['allocations.*'] }] },
      /"webhooks\.endpoints\.0\.events\.0"/,
    ],
    [{ endpoints: [{ url: 'http://h/x', secret: SECRET, events: [] }] }, /"webhooks\.endpoints\.0\.events"/],
    [
      {
        endpoints: [
          { url: 'http://h/x', secret: SECRET },
          { url: 'http://u:p@h/x', secret: SECRET },
        ],
      },
      /"webhooks\.endpoints\.1\.url": the same endpoint as webhooks\.endpoints\.0/,
    ],
    [{ maxAgeHours: 0 }, /"webhooks\.maxAgeHours"/],
    [{ retentionDays: 0.5 }, /"webhooks\.retentionDays"/],
    [
      { endpoints: [{ url: 'http://h/x', secret: SECRET, timeout: 5 }] },
      /"webhooks\.endpoints\.0\.timeout": unknown key/,
    ],
  ];
  for (const [webhooks, re] of bad)
    assert.throws(
      () => buildConfig({ webhooks }, '/x'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.exitCode, 2);
        assert.match(err.message, re);
        assert.equal(err.message.includes('hunter2') || err.message.includes(SECRET.slice(6)), false);
        return true;
      },
    );
});
