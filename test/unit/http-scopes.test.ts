import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import express from 'express';
import { ApiClient, forbiddenMessage } from '../../src/cli/api-client.js';
import { buildConfig } from '../../src/config/load.js';
import { ANONYMOUS, apiKeyResolver, apiKeysFrom, type ScopedMiddleware } from '../../src/http/auth.js';
import type { RouteInstaller, RouteTools } from '../../src/http/http-server.js';
import { rotateRoute } from '../../src/http/routes/credentials.js';
import { drainRoutes } from '../../src/http/routes/drain.js';
import { quotaRoutes } from '../../src/http/routes/quota.js';
import { sessionRoutes } from '../../src/http/routes/sessions.js';
import { tlsRoutes } from '../../src/http/routes/tls.js';
import { usageRoutes } from '../../src/http/routes/usage.js';
import { ROUTE_SCOPES, scopeFor } from '../../src/http/scopes.js';
import type { ApiScope } from '../../src/config/schema.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const READER = 'reader-key-0123456789';
const SIGNAL = 'signal-key-0123456789';
const ADMIN = 'admin-key-01234567890';

test('keys: a string has every scope and the name keyN; an entry by key or sha256 has its own', () => {
  const c = buildConfig(
    {
      http: {
        apiKeys: [
          ADMIN,
          { name: 'signalling', sha256: sha(SIGNAL), scopes: ['credentials'] },
          { name: 'billing', key: READER, scopes: ['usage'] },
        ],
      },
    },
    '/x',
  );
  const resolve = apiKeyResolver(apiKeysFrom(c.http.apiKeys));
  assert.equal(resolve(`Bearer ${ADMIN}`, undefined)?.name, 'key1');
  assert.deepEqual([...resolve(`Bearer ${ADMIN}`, undefined)!.scopes].sort(), [
    'admin',
    'control',
    'credentials',
    'usage',
  ]);
  assert.equal(resolve(undefined, SIGNAL)?.name, 'signalling', 'sha256 entry, ?key=');
  assert.deepEqual([...resolve(`Bearer ${SIGNAL}`, undefined)!.scopes], ['credentials']);
  assert.equal(resolve(`Bearer ${READER}`, undefined)?.name, 'billing');
  assert.equal(resolve(`Bearer ${sha(SIGNAL)}`, undefined), null, 'the digest itself is no key');
  assert.equal(resolve('Bearer wrong-key-0123456789', undefined), null);
  assert.equal(resolve(undefined, undefined), null);
  assert.equal(apiKeyResolver([])(undefined, undefined), ANONYMOUS, 'no keys: anonymous, every scope');
});

test('requireClientCert: the key is refused without a verified client certificate', () => {
  const c = buildConfig(
    {
      http: {
        tls: { cert: 'c.pem', key: 'k.pem', ca: 'ca.pem' },
        apiKeys: [{ name: 'ops', key: ADMIN, scopes: ['admin'], requireClientCert: true }],
      },
    },
    '/x',
  );
  const resolve = apiKeyResolver(apiKeysFrom(c.http.apiKeys));
  assert.equal(resolve(`Bearer ${ADMIN}`, undefined, {}), null, 'plain connection');
  assert.equal(resolve(`Bearer ${ADMIN}`, undefined, { authorized: false }), null, 'unverified certificate');
  assert.equal(resolve(`Bearer ${ADMIN}`, undefined, { authorized: true })?.name, 'ops');
});

test('config: entries are checked and errors name the key, never the value', () => {
  const cases: [unknown, RegExp][] = [
    [{ apiKeys: ['short'] }, /"http\.apiKeys\.0".*at least 16/],
    [{ apiKeys: [{ name: 'a', key: ADMIN, scopes: ['root'] }] }, /"http\.apiKeys\.0\.scopes\.0"/],
    [{ apiKeys: [{ name: 'a', scopes: ['usage'] }] }, /"http\.apiKeys\.0\.key": needs exactly one of key or sha256/],
    [{ apiKeys: [{ name: 'a', sha256: 'abc', scopes: ['usage'] }] }, /"http\.apiKeys\.0\.sha256"/],
    [{ apiKeys: [{ name: 'a b', key: ADMIN, scopes: ['usage'] }] }, /"http\.apiKeys\.0\.name"/],
    [
      { apiKeys: [ADMIN, { name: 'key1', key: READER, scopes: ['usage'] }] },
      /"http\.apiKeys\.1\.name": names must be unique/,
    ],
    [
      { apiKeys: [{ name: 'a', key: ADMIN, scopes: ['usage'], requireClientCert: true }] },
      /requireClientCert": needs http\.tls\.ca/,
    ],
    [{ apiKeys: [ADMIN], apiKeysFile: 'keys' }, /"http\.apiKeysFile": set either apiKeys or apiKeysFile, not both/],
  ];
  for (const [http, re] of cases) {
    assert.throws(
      () => buildConfig({ http }, '/x'),
      (err: Error) => re.test(err.message) && !err.message.includes(READER) && !err.message.includes(ADMIN),
      JSON.stringify(http),
    );
  }
  // A public bind with a key file counts as keyed.
  assert.equal(
    buildConfig({ http: { host: '0.0.0.0', apiKeysFile: 'keys' } }, '/etc/tm').http.apiKeysFile,
    '/etc/tm/keys',
  );
});

test('every route declares the scope the table says, and the table covers every route', () => {
  const declared: { method: string; path: string; scope: ApiScope | null }[] = [];
  const guard = (scope: ApiScope) => Object.assign(((_q, _s, next) => next()) as express.RequestHandler, { scope });
  const tools = {
    guard,
    gate: () => () => true,
    authorized: () => true,
    requireApiKey: guard('admin'),
  } as unknown as RouteTools;
  const none = {} as never;
  const log = { child: () => log, info() {}, warn() {}, error() {}, debug() {} } as never;
  const installers: RouteInstaller[] = [
    rotateRoute(none, log),
    usageRoutes(none, none, log),
    tlsRoutes(none),
    sessionRoutes(none, 'secret', log),
    drainRoutes(none, 10),
    quotaRoutes(none, log),
  ];
  for (const install of installers) {
    const router = express.Router();
    install(router, tools);
    for (const layer of (
      router as unknown as {
        stack: {
          route?: { path: string; methods: Record<string, boolean>; stack: { handle: Partial<ScopedMiddleware> }[] };
        }[];
      }
    ).stack) {
      const r = layer.route!;
      for (const m of Object.keys(r.methods))
        declared.push({
          method: m.toUpperCase(),
          path: r.path,
          scope: r.stack.find((l) => l.handle.scope)?.handle.scope ?? null,
        });
    }
  }
  // GET /turncredential is the fast path (app.ts: tools.gate('credentials')).
  const table = ROUTE_SCOPES.filter((r) => r.path !== '/turncredential');
  const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;
  assert.deepEqual(declared.map((d) => `${key(d)} ${d.scope}`).sort(), table.map((t) => `${key(t)} ${t.scope}`).sort());
  assert.equal(scopeFor('POST', '/clients/alice/revoke'), 'control');
  assert.equal(scopeFor('GET', '/usage?by=user'), 'usage');
  assert.equal(scopeFor('GET', '/turncredential'), 'credentials');
  assert.equal(scopeFor('GET', '/health'), null);
});

test('CLI: picks a configured key holding the scope; a 403 names the scope, never the key', () => {
  const config = buildConfig(
    {
      http: {
        apiKeys: [
          { name: 'signalling', key: SIGNAL, scopes: ['credentials'] },
          { name: 'hashed', sha256: sha(ADMIN), scopes: ['admin'] },
          { name: 'ops', key: READER, scopes: ['usage', 'control'] },
        ],
      },
    },
    '/x',
  );
  const api = new ApiClient(config, null);
  assert.equal(api.keyFor('GET', '/turncredential')?.name, 'signalling');
  assert.equal(api.keyFor('POST', '/clients/a/revoke')?.name, 'ops');
  assert.equal(api.keyFor('GET', '/health')?.name, 'ops', '/health: the usage scope (protectHealth)');
  assert.equal(api.keyFor('POST', '/drain')?.name, 'signalling', 'none holds admin in writing: the first one');
  assert.equal(new ApiClient(config, 'from-env-0123456789').keyFor('POST', '/drain')?.name, 'TURN_MONITOR_API_KEY');
  const msg = forbiddenMessage('POST', '/drain', 'admin', 'signalling');
  assert.match(msg, /POST \/drain needs an API key with the "admin" scope; the key sent \(signalling\) lacks it/);
  assert.ok(!msg.includes(SIGNAL));
  assert.equal(new ApiClient(buildConfig({ http: { port: 9 } }, '/x'), null).baseUrl, 'http://127.0.0.1:9');
});
