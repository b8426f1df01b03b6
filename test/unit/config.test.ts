import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { buildConfig, ConfigError, packageRoot } from '../../src/config/load.js';

test('defaults: every key has one, paths resolve against the config folder', () => {
  const c = buildConfig({}, '/etc/turn-monitor');
  assert.equal(c.dataDir, '/etc/turn-monitor/data');
  assert.equal(c.turnserver.listeningPort, 3478);
  assert.equal(c.turnserver.restartDelayMs, 3000);
  assert.equal(c.turnserver.template, path.join(packageRoot, 'turnserver.conf.template'));
  assert.equal(c.turnserver.bin, 'turnserver', 'bare binary names are looked up in PATH');
  assert.equal(c.http.host, '127.0.0.1');
  assert.deepEqual(c.http.apiKeys, []);
  assert.equal(c.credentials.mode, 'userdb');
  assert.equal(c.redis.url, null);
  assert.equal(c.zookeeper.path, '/turn/servers');
  assert.equal(c.discovery.sysClassNet, '/sys/class/net');
  assert.equal(c.stats.dbFile, '/etc/turn-monitor/data/usage.db');
});

test('the config object is frozen all the way down', () => {
  const c = buildConfig({ turnserver: { extraConfig: ['verbose'] } }, '/x');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.turnserver) && Object.isFrozen(c.turnserver.extraConfig));
  assert.throws(() => {
    (c.turnserver as { realm: string }).realm = 'evil';
  }, TypeError);
});

test('relative binary paths resolve, bare names do not', () => {
  const c = buildConfig(
    { turnserver: { bin: './bin/turnserver' }, credentials: { turnadmin: 'turnadmin' } },
    '/opt/tm',
  );
  assert.equal(c.turnserver.bin, '/opt/tm/bin/turnserver');
  assert.equal(c.credentials.turnadmin, 'turnadmin');
});

const bad: [unknown, RegExp][] = [
  [{ nope: 1 }, /config key "nope": unknown key/],
  [{ http: { port: -1 } }, /config key "http\.port"/],
  [{ turnserver: { minPort: 60000, maxPort: 50000 } }, /turnserver\.minPort/],
  [{ turnserver: { listeningPort: 50000, minPort: 49152 } }, /turnserver\.listeningPort/],
  [{ turnserver: { extraConfig: ['a\nb'] } }, /turnserver\.extraConfig\.0/],
  [{ http: { apiKeys: ['short'] } }, /http\.apiKeys\.0.*at least 16/],
  [{ http: { host: '0.0.0.0' } }, /http\.apiKeys/],
  [{ zookeeper: { path: 'relative' } }, /zookeeper\.path/],
  [{ stats: { source: 'kafka' } }, /stats\.source/],
  [{ zookeeper: { deniedPath: '/turn/denied/' } }, /zookeeper\.deniedPath/],
  [{ credentials: { mode: 'secret' }, quotas: { defaultBytes: -1 } }, /quotas\.defaultBytes.*negative/],
  [{ credentials: { mode: 'secret' }, quotas: { defaultBytes: 1.5 } }, /quotas\.defaultBytes.*whole/],
  [{ credentials: { mode: 'secret' }, quotas: { clients: { alice: -5 } } }, /quotas\.clients\.alice/],
  [{ credentials: { mode: 'secret' }, quotas: { clients: { 'a/b': 5 } } }, /quotas\.clients/],
  [{ credentials: { mode: 'secret' }, quotas: { warnAt: 0 } }, /quotas\.warnAt/],
  [{ quotas: { defaultBytes: 1000 } }, /quotas\.defaultBytes.*secret/],
  [{ quotas: { clients: { alice: 1000 } } }, /quotas\.clients.*secret/],
];

test('bad values: a ConfigError (exit 2) naming the key', () => {
  for (const [raw, re] of bad) {
    assert.throws(
      () => buildConfig(raw, '/x'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.exitCode, 2);
        assert.match(err.message, re);
        return true;
      },
    );
  }
});

test('quotas: defaults, and overrides per client in secret mode', () => {
  assert.deepEqual(buildConfig({}, '/x').quotas, {
    period: 'month',
    defaultBytes: null,
    warnAt: 0.8,
    checkIntervalSec: 2,
    clients: {},
  });
  const c = buildConfig(
    { credentials: { mode: 'secret' }, quotas: { clients: { alice: 3_000_000, bob: null } } },
    '/x',
  );
  assert.deepEqual(c.quotas.clients, { alice: 3_000_000, bob: null });
  assert.equal(c.zookeeper.deniedPath, '/turn/denied');
});

test('a public bind is allowed with an API key or an explicit opt-out', () => {
  assert.equal(buildConfig({ http: { host: '0.0.0.0', apiKeys: ['0123456789abcdef'] } }, '/x').http.host, '0.0.0.0');
  assert.equal(buildConfig({ http: { host: '0.0.0.0', allowUnauthenticated: true } }, '/x').http.host, '0.0.0.0');
});

test('errors never echo the offending value (it may be a secret)', () => {
  assert.throws(
    // eslint-disable-next-line no-loss-of-precision -- a number too long to be a valid key, on purpose
    () => buildConfig({ http: { apiKeys: [12345678901234567890] } }, '/x'),
    (err: Error) => !err.message.includes('12345678901234567890'),
  );
  assert.throws(
    () => buildConfig({ redis: { url: 'http://user:hunter2@x' } }, '/x'),
    (err: Error) => !err.message.includes('hunter2'),
  );
});

test("secret mode: the secret rotation and a credential's lifetime are independent; userdb mode keeps the rule", () => {
  const c = buildConfig({ credentials: { mode: 'secret', rotateIntervalSec: 86_400, validitySec: 600 } }, '/x');
  assert.equal(c.credentials.rotateIntervalSec, 86_400);
  assert.throws(
    () => buildConfig({ credentials: { rotateIntervalSec: 86_400, validitySec: 600 } }, '/x'),
    /credentials\.rotateIntervalSec/,
  );
});

test('admin CLI and quota keys: defaults, and a per-client quota only in secret mode', () => {
  const c = buildConfig({}, '/x');
  assert.equal(c.turnserver.cliPort, null);
  assert.equal(c.credentials.maxAllocationsPerClient, null);
  assert.equal(
    buildConfig({ credentials: { mode: 'secret', maxAllocationsPerClient: 3 } }, '/x').credentials
      .maxAllocationsPerClient,
    3,
  );
  assert.throws(
    () => buildConfig({ credentials: { maxAllocationsPerClient: 3 } }, '/x'),
    /credentials\.maxAllocationsPerClient/,
  );
  assert.throws(
    () => buildConfig({ turnserver: { cliPort: 70_000 } }, '/x'),
    (err: Error) => /turnserver\.cliPort/.test(err.message) && !err.message.includes('70000'),
  );
});
