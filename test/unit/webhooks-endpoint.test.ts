import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DueRow } from '../../src/webhooks/delivery-store.js';
import { FAILING_WARN_MS, isDown, judge, newEndpoint } from '../../src/webhooks/endpoint-state.js';

const endpoint = () => {
  const ep = newEndpoint(
    {
      id: 1,
      name: 'http://h/x',
      url: 'http://h/x',
      secret: `whsec_${Buffer.alloc(24).toString('base64')}`,
      timeoutMs: 1000,
    },
    'test',
  );
  ep.client.close();
  return ep;
};
const row = (attempts = 0, nextAt = 0, queuedAt = 0): DueRow => ({
  seq: 7,
  nextAt,
  attempts,
  queuedAt,
  message: () => ({ id: 'evt_x', body: '{}' }),
});
const MAX_AGE = 24 * 3_600_000;
const refused = { kind: 'retry' as const, error: 'connection refused', retryAfterMs: null };

test('an endpoint starts probed; a 2xx opens it (everything backing off is due again)', () => {
  const ep = endpoint();
  assert.ok(isDown(ep), 'not known to answer: one probe at a time');
  const j = judge(ep, row(0, 0, 1000), { kind: 'delivered', status: 200 }, true, 3000, MAX_AGE);
  assert.deepEqual(j.settled, { endpointId: 1, seq: 7, kind: 'delivered' });
  assert.equal(j.revive, true);
  assert.equal(j.latencySec, 2);
  assert.equal(isDown(ep), false);
  assert.equal(ep.lastDeliveredAt, 3000);
});

test('failures: backoff per event, three in a row make the endpoint down; a probe ahead of schedule writes nothing', () => {
  const ep = endpoint();
  judge(ep, row(), { kind: 'delivered', status: 200 }, true, 0, MAX_AGE);
  for (let i = 1; i <= 3; i++) {
    const j = judge(ep, row(i - 1), refused, true, i * 1000, MAX_AGE);
    assert.equal(j.result, 'retry');
    assert.equal(j.settled?.kind, 'retry');
  }
  assert.ok(isDown(ep));
  assert.ok(ep.pausedUntil > 3000, 'the next probe after a gap');
  const probe = judge(ep, row(3, 999_999), refused, false, 4000, MAX_AGE);
  assert.equal(probe.settled, null, 'the event keeps its own schedule');
  assert.equal(ep.lastError, 'connection refused');
  assert.equal(ep.failingSince, 1000);
});

test('failing for over a minute: one warning; a 4xx fails the event at once, the endpoint is up; maxAge gives up', () => {
  const ep = endpoint();
  const first = judge(ep, row(), refused, true, 0, MAX_AGE);
  assert.ok(!first.logs.some((l) => l.level === 'warn'));
  const later = judge(ep, row(1), refused, true, FAILING_WARN_MS + 1, MAX_AGE);
  assert.deepEqual(
    later.logs.filter((l) => l.level === 'warn').map((l) => l.fields.event),
    ['webhook-endpoint-failing'],
  );
  assert.ok(!judge(ep, row(2), refused, true, FAILING_WARN_MS + 2, MAX_AGE).logs.some((l) => l.level === 'warn'));
  const gone = judge(ep, row(), { kind: 'failed', error: 'HTTP 410' }, true, FAILING_WARN_MS + 3, MAX_AGE);
  assert.equal(gone.settled?.kind, 'failed');
  assert.equal(isDown(ep), false, 'the receiver answered');
  const old = judge(ep, row(40, 0, 0), refused, true, MAX_AGE, MAX_AGE);
  assert.equal(old.result, 'failed');
  assert.match(
    (old.settled as { error: string }).error,
    /^gave up after 41 attempt\(s\) over 24 h: connection refused$/,
  );
});

test('Retry-After pauses the endpoint that long', () => {
  const ep = endpoint();
  judge(ep, row(), { kind: 'retry', error: 'HTTP 429', retryAfterMs: 30_000 }, true, 1000, MAX_AGE);
  assert.equal(ep.pausedUntil, 31_000);
});
