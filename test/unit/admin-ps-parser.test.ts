import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parsePs } from '../../src/admin/ps-parser.js';
import { parseTurnLogLine } from '../../src/supervisor/turn-log.js';

// Answers of `ps` captured from Debian's coturn 4.6.1 (raw bytes, CRLF, prompt included).
const fixture = (name: string) =>
  readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'coturn-cli', name), 'utf8');

test('ps of coturn 4.6.1: UDP and TCP sessions, peers, usage and rates', () => {
  const { sessions, total, truncated } = parsePs(fixture('ps-udp-tcp.txt'));
  assert.equal(total, 5);
  assert.equal(truncated, false);
  assert.equal(sessions.length, 5);
  const first = sessions[0];
  assert.deepEqual(first, {
    allocationId: '000000000000000001',
    username: '1796141218:erin',
    realm: 'test.local',
    startedSecsAgo: first.startedSecsAgo,
    expiresInSec: first.expiresInSec,
    clientProtocol: 'UDP',
    relayProtocol: 'UDP',
    clientAddr: '127.0.0.1:40262',
    serverAddr: '127.0.0.1:23478',
    relayAddr: '127.0.0.1:40388',
    usage: { rp: 3, rb: 316, sp: 2, sb: 228 },
    rate: { r: 0, s: 0, total: 0 },
    peers: [],
  });
  assert.ok(typeof first.startedSecsAgo === 'number' && typeof first.expiresInSec === 'number');
  assert.deepEqual(sessions[1].peers, ['127.0.0.1:24000', '127.0.0.1:23999']);
  assert.ok(sessions.some((s) => s.clientProtocol === 'TCP' && s.relayProtocol === 'UDP'));
  assert.ok(sessions.every((s) => /^\d{18}$/.test(s.allocationId) && s.username.endsWith(':erin')));
});

test('ps cut at cli-max-output-sessions is reported as truncated', () => {
  const listing = parsePs(fixture('ps-truncated.txt'));
  assert.equal(listing.truncated, true);
  assert.equal(listing.total, 3);
  assert.equal(listing.sessions.length, 2);
});

test('an empty listing, and lines the parser does not know, are tolerated', () => {
  assert.deepEqual(parsePs(fixture('ps-empty.txt')), { sessions: [], total: 0, truncated: false });
  const odd =
    '\r\n    1) id=000000000000000007, user <bob>:\r\n      realm: r\r\n      some future line: 42\r\n      peers:\r\n          [::1]:5000\r\n      usage: rp=1, rb=2, sp=3, sb=4\r\n\r\n  Total sessions: 1\r\n\r\n> ';
  const { sessions } = parsePs(odd);
  assert.equal(sessions.length, 1);
  assert.deepEqual(sessions[0].peers, ['[::1]:5000']);
  assert.deepEqual(sessions[0].usage, { rp: 1, rb: 2, sp: 3, sb: 4 });
  assert.equal(sessions[0].relayAddr, null);
});

test('turnserver log lines naming the CLI password are redacted', () => {
  assert.equal(parseTurnLogLine('0: : cli-password=0123abcd').text, 'cli-password=[redacted]');
  assert.doesNotMatch(parseTurnLogLine('0: : CLI password: s3cr3t').text, /s3cr3t/);
});
