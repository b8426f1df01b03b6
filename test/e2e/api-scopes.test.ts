import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { ROUTE_SCOPES } from '../../src/http/scopes.js';
import { waitExit } from '../harness/harness.js';

// One key per scope (the credentials one given as its SHA-256), and an old-style string key.
const KEYS = {
  signalling: { key: 'signalling-key-0123456789', scope: 'credentials' },
  billing: { key: 'billing-key-012345678901', scope: 'usage' },
  support: { key: 'support-key-012345678901', scope: 'control' },
  ops: { key: 'ops-key-0123456789012345', scope: 'admin' },
} as const;
const ALL = 'all-scopes-key-0123456789';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Each route once, and what it answers a key that holds its scope (a secret-mode monitor, TLS
 * off, no live allocation): 2xx, or the route's own answer past the scope check where this set-up
 * cannot succeed (409 wrong mode, 404 no such allocation / TLS off). POST /drain stops the idle
 * monitor: it goes last.
 */
const REQUESTS: Record<string, { path: string; body?: unknown; allowed: number }> = {
  'GET /turncredential': { path: '/turncredential?user=alice', allowed: 200 },
  'POST /turncredential/rotate': { path: '/turncredential/rotate', allowed: 200 },
  'POST /turncredential/revoke': { path: '/turncredential/revoke', allowed: 409 },
  'GET /sessions': { path: '/sessions', allowed: 200 },
  'POST /sessions/:id/disconnect': { path: '/sessions/123456/disconnect', allowed: 404 },
  'POST /clients/:clientId/revoke': { path: '/clients/mallory/revoke', allowed: 200 },
  'DELETE /clients/:clientId/revoke': { path: '/clients/mallory/revoke', allowed: 200 },
  'GET /usage': { path: '/usage', allowed: 200 },
  'GET /allocations': { path: '/allocations', allowed: 200 },
  // Quotas are off on this monitor (no quota, no PostgreSQL): the route's own 409 past the scope.
  'GET /clients/:clientId/quota': { path: '/clients/alice/quota', allowed: 409 },
  'POST /drain/cancel': { path: '/drain/cancel', allowed: 200 },
  'GET /tls': { path: '/tls', allowed: 404 },
  'POST /tls/reload': { path: '/tls/reload', allowed: 404 },
  'POST /drain': { path: '/drain', body: { timeoutSec: 5, then: 'stop' }, allowed: 202 },
};

harnessTest(
  'scope matrix: every route answers each scope key 2xx or 403 {forbidden, scope}; sha256 entry, 401s, access log and metrics name the key, never show it; the CLI names the scope',
  async (h) => {
    const m = await startMonitor(h, {
      credentials: { mode: 'secret' },
      http: {
        apiKeys: [
          ALL,
          { name: 'signalling', sha256: sha(KEYS.signalling.key), scopes: ['credentials'] },
          ...(['billing', 'support', 'ops'] as const).map((name) => ({
            name,
            key: KEYS[name].key,
            scopes: [KEYS[name].scope],
          })),
        ],
      },
    });
    const call = (method: string, path: string, key: string | null, body?: unknown) =>
      m.get(path, {
        method,
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });

    assert.equal((await call('GET', '/turncredential', null)).status, 401, 'no key');
    assert.equal((await call('GET', '/usage', 'wrong-key-0123456789abc')).status, 401, 'wrong key');
    assert.equal((await call('GET', `/usage?key=${sha(KEYS.billing.key)}`, null)).status, 401, 'a digest is no key');
    assert.equal((await call('GET', `/usage?key=${KEYS.billing.key}`, null)).status, 200, '?key= works too');
    assert.equal((await call('GET', '/turncredential?user=bob', ALL)).status, 200, 'a string key has every scope');
    assert.equal((await call('GET', '/allocations', ALL)).status, 200);

    // The CLI (before the drain ends this monitor): a key without the scope → exit 1 naming it.
    const cli = await h.run('cli', process.execPath, [monitorBin, 'credential', '--rotate', '--config', m.configFile], {
      env: { ...process.env, TURN_MONITOR_API_KEY: KEYS.signalling.key },
    });
    assert.equal(cli.code, 1, cli.output);
    assert.match(cli.output, /POST \/turncredential\/rotate needs an API key with the "control" scope/);
    // Without the variable the CLI picks a configured key holding the scope.
    const cli2 = await h.run('cli', process.execPath, [monitorBin, 'revoke', 'eve', '--config', m.configFile]);
    assert.equal(cli2.code, 0, cli2.output);

    const seen: string[] = [];
    for (const { method, path: pattern, scope } of [...ROUTE_SCOPES].sort(
      (a, b) => Number(a.path === '/drain') - Number(b.path === '/drain'),
    )) {
      const route = `${method} ${pattern}`;
      const r = REQUESTS[route];
      assert.ok(r, `the test covers ${route}`);
      // Forbidden keys first: the one allowed call may change state (a revoke, the drain).
      const order = (Object.keys(KEYS) as (keyof typeof KEYS)[]).sort(
        (a, b) => Number(KEYS[a].scope === scope) - Number(KEYS[b].scope === scope),
      );
      for (const name of order) {
        const res = await call(method, r.path, KEYS[name].key, r.body);
        if (KEYS[name].scope === scope) {
          assert.equal(res.status, r.allowed, `${route} with ${name} (${scope}): ${res.text}`);
        } else {
          assert.equal(res.status, 403, `${route} with ${name}: ${res.text}`);
          assert.deepEqual(res.body, {
            type: 'error',
            code: 'forbidden',
            scope,
            error: `this API key lacks the "${scope}" scope`,
          });
        }
        seen.push(route);
      }
      if (pattern === '/drain/cancel') {
        // Metrics (open by default), before the drain stops the monitor.
        const metrics = (await call('GET', '/metrics', null)).text;
        assert.match(metrics, /turn_monitor_http_requests_total\{route="\/usage",status="200",key="billing"\} [1-9]/);
        assert.match(metrics, /turn_monitor_http_requests_total\{route="\/usage",status="403",key="signalling"\} 1/);
        assert.match(
          metrics,
          /turn_monitor_http_requests_total\{route="\/turncredential",status="200",key="signalling"\}/,
        );
        assert.match(metrics, /turn_monitor_http_requests_total\{route="\/usage",status="401",key="none"\} 2/);
        assert.match(metrics, /turn_monitor_http_requests_total\{route="\/allocations",status="200",key="key1"\} 1/);
      }
    }
    assert.equal(new Set(seen).size, ROUTE_SCOPES.length);
    await waitExit(m.tracked, 20_000); // the drain of an idle host stops it

    const requests = m.logs.filter((e) => e.event === 'request');
    const usageByBilling = requests.find((e) => e.route === '/usage' && e.keyName === 'billing' && e.status === 200);
    assert.ok(usageByBilling, 'the access log names the key');
    assert.equal(usageByBilling.level, 'info');
    assert.ok(requests.some((e) => e.route === '/drain' && e.keyName === 'ops' && e.status === 202));
    assert.ok(requests.some((e) => e.route === '/turncredential' && e.keyName === 'signalling' && e.status === 200));
    const everything = m.output();
    for (const secret of [ALL, ...Object.values(KEYS).map((k) => k.key)])
      assert.ok(!everything.includes(secret), 'no key in any log line');
  },
  { timeout: 60_000 },
);
