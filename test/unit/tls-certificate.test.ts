import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { renderTemplate, tlsLines } from '../../src/supervisor/render-conf.js';
import { startupFailure } from '../../src/supervisor/turn-log.js';
import { checkPair, daysLeft } from '../../src/tls/certificate.js';
import { turnUrisFor } from '../../src/util/addresses.js';
import { makePair, pem } from '../harness/certs.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-certs-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const good = makePair(dir, 'good', { cn: 'turn.test', san: 'DNS:turn.test,IP:127.0.0.1', days: 30 });
const other = makePair(dir, 'other', { cn: 'other.test', days: 30 });
const expired = makePair(dir, 'expired', { days: -1 });
const files = { certFile: '/etc/c.pem', keyFile: '/etc/k.pem' };

test('a good pair: subject, names, dates and the fingerprint openssl computes', () => {
  const info = checkPair(pem(good.cert), pem(good.key), { ...files, serverName: 'turn.test' });
  assert.equal(info.subject, 'CN=turn.test');
  assert.deepEqual(info.names, ['turn.test', '127.0.0.1']);
  assert.equal(info.fingerprint, good.fingerprint);
  assert.ok(daysLeft(info) >= 29 && daysLeft(info) <= 30);
  assert.doesNotThrow(() => checkPair(pem(good.cert), pem(good.key), { ...files, serverName: '127.0.0.1' }));
});

test('a chain: the leaf first; a chain in the wrong order is refused', () => {
  const chain = pem(good.cert) + pem(other.cert);
  assert.throws(
    () => checkPair(chain, pem(good.key), files),
    /certificate 1 of the chain is not issued by certificate 2/,
  );
});

test('every bad pair names the file and the reason, never its content', () => {
  const cases: [string, string, string, RegExp][] = [
    ['garbage cert', 'not a certificate', pem(good.key), /^TLS \/etc\/c\.pem: no PEM certificate found$/],
    [
      'corrupt cert',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      pem(good.key),
      /\/etc\/c\.pem: certificate 1 of the chain does not parse/,
    ],
    ['garbage key', pem(good.cert), 'junk', /^TLS \/etc\/k\.pem: no PEM private key found$/],
    [
      'corrupt key',
      pem(good.cert),
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
      /\/etc\/k\.pem: the private key does not parse/,
    ],
    [
      'foreign key',
      pem(good.cert),
      pem(other.key),
      /\/etc\/k\.pem: the private key does not match the certificate in \/etc\/c\.pem/,
    ],
    ['expired', pem(expired.cert), pem(expired.key), /\/etc\/c\.pem: the certificate expired at \d{4}-/],
  ];
  for (const [label, cert, key, expected] of cases) {
    assert.throws(
      () => checkPair(cert, key, files),
      (err: Error) => {
        assert.match(err.message, expected, label);
        assert.doesNotMatch(err.message, /BEGIN|AAAA/, `${label}: no file content in the message`);
        return true;
      },
    );
  }
  assert.throws(
    () => checkPair(pem(good.cert), pem(good.key), { ...files, serverName: 'other.test' }),
    /names do not cover serverName other\.test/,
  );
  assert.throws(
    () => checkPair(pem(good.cert), pem(good.key), { ...files, now: Date.now() + 40 * 86_400_000 }),
    /expired/,
  );
});

test('config: TLS needs cert and key together, a port of its own; paths resolve', () => {
  assert.throws(
    () => buildConfig({ turnserver: { tls: { cert: 'c.pem' } } }, '/d'),
    (e: Error) => e instanceof ConfigError && /"turnserver\.tls\.key": TLS needs both/.test(e.message),
  );
  assert.throws(() => buildConfig({ turnserver: { tls: { key: 'k.pem' } } }, '/d'), /"turnserver\.tls\.cert"/);
  assert.throws(
    () => buildConfig({ turnserver: { tls: { cert: 'c', key: 'k', port: 3478 } } }, '/d'),
    /"turnserver\.tls\.port": must differ/,
  );
  assert.throws(
    () => buildConfig({ turnserver: { tls: { cert: 'c', key: 'k', port: 50000 } } }, '/d'),
    /"turnserver\.tls\.port": must lie outside/,
  );
  assert.throws(() => buildConfig({ turnserver: { tls: { sni: 'x' } } }, '/d'), /"turnserver\.tls\.sni": unknown key/);
  const c = buildConfig({ turnserver: { tls: { cert: 'live/cert.pem', key: '/abs/key.pem' } } }, '/etc/tm');
  assert.equal(c.turnserver.tls.cert, '/etc/tm/live/cert.pem');
  assert.equal(c.turnserver.tls.key, '/abs/key.pem');
  assert.deepEqual(buildConfig({}, '/d').turnserver.tls, {
    cert: null,
    key: null,
    port: 5349,
    serverName: null,
    warnDays: 14,
  });
});

test('conf and URIs: no-tls when off; cert, pkey, tls-listening-port and a turns: URI when on', () => {
  const off = buildConfig({ turnserver: { externalIp: '198.51.100.7' } }, '/d');
  assert.deepEqual(tlsLines(off), ['no-tls']);
  assert.ok(!turnUrisFor(off, 'h').some((u) => u.startsWith('turns:')));
  const on = buildConfig(
    { turnserver: { externalIp: '198.51.100.7', tls: { cert: '/c.pem', key: '/k.pem', port: 443 } } },
    '/d',
  );
  const conf = renderTemplate('{{tlsLines}}\nno-dtls', on, []);
  assert.equal(
    conf,
    'tls-listening-port=443\ncert=/d/data/tls-cert.pem\npkey=/d/data/tls-key.pem\nno-dtls',
    'the checked copies, not the files',
  );
  assert.equal(turnUrisFor(on, 'h').at(-1), 'turns:198.51.100.7:443?transport=tcp');
  const named = buildConfig(
    { turnserver: { externalIp: '198.51.100.7', tls: { cert: '/c', key: '/k', serverName: 'turn.example.org' } } },
    '/d',
  );
  assert.equal(turnUrisFor(named, 'h').at(-1), 'turns:turn.example.org:5349?transport=tcp');
});

test('turnserver lines that fail start-up: no TLS listener, a TLS port it cannot bind (hint below 1024)', () => {
  assert.match(
    startupFailure('0: : WARNING: cannot start TLS and DTLS listeners because certificate file is not set properly') ??
      '',
    /without its TLS listener/,
  );
  assert.match(
    startupFailure('0: : Cannot bind TLS/TCP listener socket to addr 0.0.0.0:443') ?? '',
    /0\.0\.0\.0:443 \(in use, or a port below 1024 without root or cap_net_bind_service\?\)/,
  );
  assert.match(
    startupFailure('0: : Cannot bind TLS/TCP listener socket to addr 127.0.0.1:5349') ?? '',
    /127\.0\.0\.1:5349 \(address in use\?\)/,
  );
  assert.equal(startupFailure('0: : TLS1.2: Certificate file found: /c.pem'), null);
});
