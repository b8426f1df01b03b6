import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { buildConfig, packageRoot } from '../../src/config/load.js';
import { renderTemplate } from '../../src/supervisor/render-conf.js';
import { bindingRequest, isBindingResponse, probeHost } from '../../src/supervisor/stun-probe.js';
import { bindFailure, parseTurnLogLine } from '../../src/supervisor/turn-log.js';
import { Backoff } from '../../src/process/backoff.js';

const template = readFileSync(path.join(packageRoot, 'turnserver.conf.template'), 'utf8');

test('turnserver log lines: level from the tag, prefix stripped, passwords redacted', () => {
  assert.deepEqual(parseTurnLogLine('12: : ERROR: cannot open db'), { level: 'error', text: 'cannot open db' });
  assert.deepEqual(parseTurnLogLine('0: (1234): WARNING: something'), { level: 'warn', text: 'something' });
  assert.deepEqual(parseTurnLogLine('0: : Relay ports initialization done'), {
    level: 'info',
    text: 'Relay ports initialization done',
  });
  assert.equal(
    parseTurnLogLine('3: : INFO: redis: ip=127.0.0.1 password=hunter2 dbname=0').text.includes('hunter2'),
    false,
  );
  assert.equal(parseTurnLogLine('bind: Address already in use').level, 'warn');
  // Per-session lines are debug; a session's ERROR or WARNING keeps its level.
  assert.equal(parseTurnLogLine('7: : session 001000000000000001: refreshed, realm=<r>, username=<u>').level, 'debug');
  assert.equal(parseTurnLogLine('7: : IPv4. Local relay addr: 127.0.0.1:50000').level, 'debug');
  assert.equal(parseTurnLogLine('7: : ERROR: session 001000000000000001: cannot send').level, 'error');
});

test('bind failure lines are recognised', () => {
  assert.match(
    bindFailure('0: : Cannot bind TLS/TCP listener socket to addr 127.0.0.1:3478') ?? '',
    /127\.0\.0\.1:3478/,
  );
  assert.equal(bindFailure('0: : Listener address to use: 127.0.0.1'), null);
});

test('STUN binding request and response matching', () => {
  const { packet, transactionId } = bindingRequest();
  assert.equal(packet.length, 20);
  assert.equal(packet.readUInt16BE(0), 0x0001);
  assert.equal(packet.readUInt32BE(4), 0x2112a442);
  const response = Buffer.from(packet);
  response.writeUInt16BE(0x0101, 0);
  assert.ok(isBindingResponse(response, transactionId));
  const other = Buffer.from(response);
  other[19] ^= 0xff;
  assert.equal(isBindingResponse(other, transactionId), false);
  assert.equal(probeHost('0.0.0.0'), '127.0.0.1');
  assert.equal(probeHost('::'), '::1');
  assert.equal(probeHost('10.1.2.3'), '10.1.2.3');
});

test('template: safe by default, loopback denial lifted only by allowLoopbackPeers', () => {
  const safe = renderTemplate(template, buildConfig({}, '/d'), ['# monitor line']);
  for (const line of [
    'lt-cred-mech',
    'fingerprint',
    'no-tls',
    'no-dtls',
    'denied-peer-ip=127.0.0.0-127.255.255.255',
    'denied-peer-ip=::1',
    'denied-peer-ip=10.0.0.0-10.255.255.255',
    'denied-peer-ip=169.254.0.0-169.254.255.255',
    'denied-peer-ip=100.64.0.0-100.127.255.255',
    'denied-peer-ip=172.16.0.0-172.31.255.255',
    'denied-peer-ip=192.168.0.0-192.168.255.255',
    'denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'userdb=/d/data/turndb',
    'pidfile=/d/data/turnserver.pid',
    '# monitor line',
  ]) {
    assert.ok(safe.split('\n').includes(line), `missing: ${line}`);
  }
  assert.equal(safe.includes('allow-loopback-peers'), false);
  // The admin CLI's lines (loopback, a password per start) come from the monitor block, not the template.
  assert.equal(/^(no-cli|cli-)/m.test(safe), false);
  const test = renderTemplate(
    template,
    buildConfig({ turnserver: { allowLoopbackPeers: true, extraConfig: ['verbose'] } }, '/d'),
    [],
  );
  assert.ok(test.includes('allow-loopback-peers'));
  assert.equal(test.includes('denied-peer-ip=127.0.0.0-127.255.255.255'), false);
  assert.ok(test.includes('denied-peer-ip=10.0.0.0-10.255.255.255'), 'private ranges stay denied');
  assert.ok(test.trimEnd().endsWith('verbose'));
  assert.throws(() => renderTemplate('x={{nope}}', buildConfig({}, '/d'), []), /unknown placeholder \{\{nope\}\}/);
});

test('backoff doubles up to the cap and resets', () => {
  const b = new Backoff(3000, 10_000);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [3000, 6000, 10_000, 10_000]);
  b.reset();
  assert.equal(b.next(), 3000);
});
test('a turnserver WARNING stays a warning unless it is known to be harmless in the rendered conf', () => {
  const harmless = parseTurnLogLine(
    '0: : WARNING: I cannot support STUN CHANGE_REQUEST functionality because only one IP address is provided',
  );
  assert.equal(harmless.level, 'info');
  assert.match(harmless.text, /^I cannot support STUN CHANGE_REQUEST/);
  assert.equal(parseTurnLogLine('0: : WARNING: cannot find certificate file: x.pem').level, 'warn');
  assert.equal(parseTurnLogLine('12: : ERROR: Cannot bind listener').level, 'error');
  assert.equal(parseTurnLogLine('3: : INFO: Relay ports initialization done').level, 'info');
});
