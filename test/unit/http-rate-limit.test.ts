import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FixedWindowLimiter, rateLimitHeaders } from '../../src/http/rate-limit.js';

test('fixed window: limit per key, window from the first hit, refused hits count, expired keys swept', () => {
  let now = 1_000_000;
  const l = new FixedWindowLimiter(2, 60_000, () => now);
  assert.deepEqual(l.hit('a'), { limited: false, limit: 2, remaining: 1, resetSeconds: 60, windowSeconds: 60 });
  now += 10_500;
  assert.deepEqual(l.hit('a'), { limited: false, limit: 2, remaining: 0, resetSeconds: 50, windowSeconds: 60 });
  assert.equal(l.hit('a').limited, true);
  assert.equal(l.hit('b').limited, false, 'keys are independent');
  now += 49_499; // 1 ms before a's window ends
  assert.deepEqual(l.hit('a'), { limited: true, limit: 2, remaining: 0, resetSeconds: 1, windowSeconds: 60 });
  now += 1;
  assert.deepEqual(
    l.hit('a'),
    { limited: false, limit: 2, remaining: 1, resetSeconds: 60, windowSeconds: 60 },
    'a new window',
  );
  now += 60_000; // both windows over: the next hit sweeps them
  l.hit('c');
  assert.equal(l.size, 1);
});

test('draft-7 headers as express-rate-limit wrote them; Retry-After only when refused', () => {
  const ok = { limited: false, limit: 600, remaining: 599, resetSeconds: 60, windowSeconds: 60 };
  assert.deepEqual(rateLimitHeaders(ok), {
    'RateLimit-Policy': '600;w=60',
    RateLimit: 'limit=600, remaining=599, reset=60',
  });
  assert.deepEqual(rateLimitHeaders({ ...ok, limited: true, remaining: 0, resetSeconds: 7 }), {
    'RateLimit-Policy': '600;w=60',
    RateLimit: 'limit=600, remaining=0, reset=7',
    'Retry-After': '7',
  });
});
