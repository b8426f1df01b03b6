import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { buildConfig } from '../../src/config/load.js';
import { HttpServer, plaintextWarning } from '../../src/http/http-server.js';
import { createLogger } from '../../src/log/logger.js';

const USAGE = 'usage-key-0123456789ab';
const SIGNAL = 'signal-key-0123456789a';

/** An HttpServer on a free loopback port (no subsystem behind it), its log lines collected. */
async function serve(http: Record<string, unknown>) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const config = buildConfig({ http: { host: '127.0.0.1', port: 0, ...http } }, '/x');
  const registry = new Registry();
  const server = new HttpServer(config, createLogger('info', sink), { health: () => ({ status: 'ok' }), registry });
  server.addRoutes((router, { guard }) => router.get('/probe', guard('usage'), (_req, res) => void res.json({})));
  await server.start();
  const base = `http://127.0.0.1:${server.address.port}`;
  const get = (p: string, key?: string) =>
    fetch(base + p, { headers: key ? { authorization: `Bearer ${key}` } : {} }).then((r) => r.status);
  return { server, registry, lines, get };
}

test('protectHealth: /health and /metrics need the usage scope; without it they stay open', async () => {
  const keys = [
    { name: 'billing', key: USAGE, scopes: ['usage'] },
    { name: 'signalling', key: SIGNAL, scopes: ['credentials'] },
  ];
  const closed = await serve({ apiKeys: keys, protectHealth: true });
  try {
    assert.deepEqual(
      [await closed.get('/health'), await closed.get('/health', SIGNAL), await closed.get('/health', USAGE)],
      [401, 403, 200],
    );
    assert.equal(await closed.get('/metrics', USAGE), 200);
    assert.equal(await closed.get('/metrics'), 401);
  } finally {
    await closed.server.stop();
  }
  const open = await serve({ apiKeys: keys });
  try {
    assert.equal(await open.get('/health'), 200);
    assert.equal(await open.get('/metrics'), 200);
  } finally {
    await open.server.stop();
  }
});

test('no key configured: requests are "anonymous" in metrics and the access log; 404s are "unmatched"', async () => {
  const s = await serve({});
  try {
    assert.equal(await s.get('/probe'), 200);
    assert.equal(await s.get('/nowhere?key=x'), 404);
    const metrics = await s.registry.metrics();
    assert.match(metrics, /turn_monitor_http_requests_total\{route="\/probe",status="200",key="anonymous"\} 1/);
    assert.match(metrics, /turn_monitor_http_requests_total\{route="unmatched",status="404",key="none"\} 1/);
    const probe = s.lines.find((l) => l.event === 'request' && l.route === '/probe');
    assert.equal(probe?.keyName, 'anonymous');
    assert.equal(probe?.level, 'info');
    assert.ok(!JSON.stringify(s.lines).includes('key=x'), 'the query string is not logged');
    assert.deepEqual(s.server.health(), {
      status: 'ok',
      host: '127.0.0.1',
      port: s.server.address.port,
      scheme: 'http',
      tls: null,
    });
  } finally {
    await s.server.stop();
  }
});

test('a non-loopback host without http.tls is warned about (credentials in clear text) unless allowPlaintext', () => {
  const tls = { cert: 'c', key: 'k', ca: null };
  assert.match(
    plaintextWarning({ host: '10.0.0.5', tls: null, allowPlaintext: false }) ?? '',
    /10\.0\.0\.5 without http\.tls: API keys and TURN credentials cross the network in clear text/,
  );
  assert.ok(plaintextWarning({ host: '0.0.0.0', tls: null, allowPlaintext: false }));
  assert.equal(plaintextWarning({ host: '10.0.0.5', tls, allowPlaintext: false }), null);
  assert.equal(plaintextWarning({ host: '10.0.0.5', tls: null, allowPlaintext: true }), null);
  for (const host of ['127.0.0.1', '::1', 'localhost'])
    assert.equal(plaintextWarning({ host, tls: null, allowPlaintext: false }), null);
});
