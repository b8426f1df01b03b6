import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLogLine } from '../../src/stats/sources/log/log-parser.js';
import { finalCounters } from '../../src/stats/allocation-record.js';
import { AllocationModel } from '../../src/stats/model.js';

// Real lines from coturn 4.6.1 with `verbose`, as our supervisor receives them (--simple-log, stdout).
const LINES = [
  '7: : session 000000000000000003: new, realm=<example.org>, username=<u>, lifetime=777',
  '7: : session 000000000000000003: refreshed, realm=<example.org>, username=<u>, lifetime=0',
  '8: : session 000000000000000003: usage: realm=<example.org>, username=<u>, rp=3, rb=260, sp=3, sb=300',
  '8: : session 000000000000000003: peer usage: realm=<example.org>, username=<u>, rp=1, rb=100, sp=1, sb=100',
  '8: : session 000000000000000003: closed (2nd stage), user <u> realm <example.org> origin <>, local 127.0.0.1:34821, remote 127.0.0.1:33624, reason: TCP connection closed by client (callback)',
  '8: : session 000000000000000003: delete: realm=<example.org>, username=<u>',
];

test('each kind of session line becomes the matching event', () => {
  const [n, r, u, p, c, d] = LINES.map((l) => parseLogLine(l, 42));
  assert.deepEqual(n, {
    source: 'log',
    at: 42,
    allocationId: '000000000000000003',
    realm: 'example.org',
    username: 'u',
    kind: 'status',
    status: 'new',
    lifetime: 777,
    transport: null,
    local: null,
    remote: null,
  });
  assert.equal(r?.kind === 'status' && r.status === 'refreshed' && r.lifetime, 0);
  assert.deepEqual(u?.kind === 'traffic' && [u.rcvp, u.rcvb, u.sentp, u.sentb], [3, 260, 3, 300]);
  assert.equal(p?.kind, 'traffic/peer');
  assert.deepEqual(c?.kind === 'closed' && [c.reason, c.local, c.remote, c.username, c.realm], [
    'TCP connection closed by client (callback)',
    '127.0.0.1:34821',
    '127.0.0.1:33624',
    'u',
    'example.org',
  ]);
  assert.equal(d?.kind === 'status' && d.status, 'deleted');
});

test('usernames with >, commas, spaces, colons and slashes: anchored on the text after them', () => {
  const odd = '17:x> y, z/w';
  const lines = [
    `session 000000000000000009: new, realm=<r>, username=<${odd}>, lifetime=600`,
    `session 000000000000000009: usage: realm=<r>, username=<${odd}>, rp=1, rb=2, sp=3, sb=4`,
    `session 000000000000000009: closed (2nd stage), user <${odd}> realm <r> origin <>, local 1.2.3.4:5, remote 6.7.8.9:10, reason: allocation timeout`,
    `session 000000000000000009: delete: realm=<r>, username=<${odd}>`,
  ];
  for (const l of lines) assert.equal(parseLogLine(l, 0)?.username, odd, l);
  assert.equal(parseLogLine('session 1: usage: realm=<r>, username=<>, rp=1, rb=104, sp=0, sb=0', 0)?.username, '');
});

test('other lines are ignored cheaply; broken ones are null', () => {
  for (const l of [
    '0: : Relay ports initialization done',
    '8: : session 000000000000000005: client socket to be closed in client handler: ss=0x7fecf80316f0',
    '8: : session 000000000000000001: peer 127.0.0.1:34923 deleted',
    'session x: new, realm=<r>, username=<u>, lifetime=1',
    'session 1: usage: realm=<r>, username=<u>, rp=1, rb=2',
    'session 1: new, realm=<r>, username=<u>, lifetime=abc',
  ])
    assert.equal(parseLogLine(l, 0), null, l);
});

test("source 'log': a log delete closes the allocation with the summed usage lines and the close reason", () => {
  const m = new AllocationModel({ deleteGraceMs: 1000, primary: 'log' });
  for (const l of LINES) m.ingest(parseLogLine(l, 1)!, 'run');
  assert.equal(m.openCount, 0);
  const [r] = m.drainDirty();
  assert.deepEqual(finalCounters(r), { client: [3, 260, 3, 300], peer: [1, 100, 1, 100] });
  assert.deepEqual(
    [r.endReason, r.endDetail, r.complete, r.local],
    ['deleted', 'TCP connection closed by client (callback)', true, '127.0.0.1:34821'],
  );
});

test('near misses of the scanned line kinds are not events', () => {
  for (const l of [
    'session 1: pxxx usage: realm=<r>, username=<u>, rp=1, rb=2, sp=3, sb=4',
    'session 1: usage: realm=<r>, username=<u>, rp=1, rb=2, sp=3',
    'session 1: usage: realm=<r>, username=<u>, rp=1, rb=2, sp=3, sb=4 trailing',
    'session 1: new, realm=<r>, username=<u>, lifetime=',
    'session 1: refreshed, realm=<r>, username=<u>',
    'session 1: delete: realm=<r>, username=<u> x',
    'session 1: delete: realm=<r>',
    'session 1: realm <r> user <u>: incoming packet REFRESH processed, success',
    'session 1: peer 127.0.0.1 lifetime updated: 300',
  ])
    assert.equal(parseLogLine(l, 0), null, l);
  assert.equal(parseLogLine('session 1: delete: realm=<r>, username=<u>  ', 0)?.kind, 'status');
  assert.equal(
    parseLogLine('session 1: new, realm=<r>, username=<a>, lifetime=5>, lifetime=600', 0)?.username,
    'a>, lifetime=5',
  );
});
