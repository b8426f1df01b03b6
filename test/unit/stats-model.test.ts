import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UsageEvent } from '../../src/stats/events.js';
import { finalCounters } from '../../src/stats/allocation-record.js';
import { AllocationModel } from '../../src/stats/model.js';
import { clientIdOf } from '../../src/stats/client-id.js';
import { parseRedisEvent } from '../../src/stats/sources/redis/redis-events.js';

test('topics: anchored on the end; realm optional; usernames may be empty or contain / and :', () => {
  const e = parseRedisEvent(
    'turn/realm/ex.org/user/1795348399:alice/allocation/000000000000000007/traffic/peer',
    'rcvp=1, rcvb=2, sentp=3, sentb=4',
    5,
  );
  assert.deepEqual(e, {
    source: 'redis',
    at: 5,
    realm: 'ex.org',
    username: '1795348399:alice',
    allocationId: '000000000000000007',
    kind: 'traffic/peer',
    rcvp: 1,
    rcvb: 2,
    sentp: 3,
    sentb: 4,
  });
  assert.equal(
    parseRedisEvent('turn/user/a/b/allocation/x/allocation/12/status', 'deleted', 0)?.username,
    'a/b/allocation/x',
  );
  const noRealm = parseRedisEvent(
    'turn/user//allocation/001000000000000011/traffic',
    'rcvp=1, rcvb=104, sentp=0, sentb=0',
    0,
  );
  assert.equal(noRealm?.realm, null);
  assert.equal(noRealm?.username, '');
  assert.equal(
    parseRedisEvent('turn/realm/ex.org/user/u/allocation/1/total_traffic', 'rcvp=1, rcvb=2, sentp=3, sentb=4', 0)?.kind,
    'total_traffic',
  );
});

test('status payloads by prefix, optional fields kept, old format accepted', () => {
  const s = parseRedisEvent(
    'turn/user/u/allocation/1/status',
    'new lifetime=600, type=UDP, local=127.0.0.1:3491, remote=127.0.0.1:56929, ssl=NONE, cipher=NONE',
    0,
  );
  assert.deepEqual(s && s.kind === 'status' && [s.status, s.lifetime, s.transport, s.local, s.remote], [
    'new',
    600,
    'UDP',
    '127.0.0.1:3491',
    '127.0.0.1:56929',
  ]);
  const old = parseRedisEvent('turn/user/u/allocation/1/status', 'new lifetime=600', 0);
  assert.deepEqual(old && old.kind === 'status' && [old.status, old.lifetime, old.transport], ['new', 600, null]);
  assert.equal(parseRedisEvent('turn/user/u/allocation/1/status', 'refreshed lifetime=0', 0)?.kind, 'status');
});

test('malformed messages are null, never thrown', () => {
  for (const [c, m] of [
    ['__XXX__', 'x'],
    ['turn/user/u/allocation/abc/status', 'deleted'],
    ['turn/user/u/allocation/1/status', 'exploded'],
    ['turn/user/u/allocation/1/traffic', 'rcvp=1, rcvb=2'],
    ['turn/user/u/allocation/1/traffic', 'rcvp=-1, rcvb=2, sentp=3, sentb=4'],
    ['turn/realm/r/allocation/1/status', 'deleted'],
    ['turn/user/u/allocation//status', 'deleted'],
    ['other/user/u/allocation/1/status', 'deleted'],
  ])
    assert.equal(parseRedisEvent(c, m, 0), null, `${c} ${m}`);
});

test('client id: the part after the first colon of a REST username', () => {
  assert.equal(clientIdOf('1795348399:alice'), 'alice');
  assert.equal(clientIdOf('1795348399:a:b'), 'a:b');
  assert.equal(clientIdOf('alice'), 'alice');
  assert.equal(clientIdOf('x:y'), 'x:y');
});

const ev = (kind: string, msg: string, at = 0, id = '1', user = 'u'): UsageEvent =>
  parseRedisEvent(`turn/realm/r/user/${user}/allocation/${id}/${kind}`, msg, at)!;

test('increments are summed; totals replace the sums, never added to them', () => {
  const m = new AllocationModel({ deleteGraceMs: 1000 });
  m.ingest(ev('status', 'new lifetime=600, type=UDP', 1), 'run1');
  m.ingest(ev('traffic', 'rcvp=10, rcvb=100, sentp=10, sentb=100', 2), 'run1');
  m.ingest(ev('traffic', 'rcvp=1, rcvb=10, sentp=1, sentb=10', 3), 'run1');
  m.ingest(ev('traffic/peer', 'rcvp=5, rcvb=50, sentp=5, sentb=50', 3), 'run1');
  assert.deepEqual(m.openRecords()[0].client, [11, 110, 11, 110]);
  m.ingest(ev('status', 'deleted', 4), 'run1');
  m.ingest(ev('total_traffic', 'rcvp=11, rcvb=110, sentp=11, sentb=110', 4), 'run1');
  assert.equal(m.openCount, 1, 'waits for total_traffic/peer');
  m.ingest(ev('total_traffic/peer', 'rcvp=5, rcvb=50, sentp=5, sentb=50', 4), 'run1');
  assert.equal(m.openCount, 0);
  const [r] = m.drainDirty();
  assert.deepEqual(finalCounters(r), { client: [11, 110, 11, 110], peer: [5, 50, 5, 50] });
  assert.equal(r.endReason, 'deleted');
  assert.equal(r.complete, true);
});

test('runs keep reused ids apart; a run ending closes its open allocations as child-exit', () => {
  const m = new AllocationModel({ deleteGraceMs: 1000 });
  m.ingest(ev('status', 'new lifetime=600', 1), 'run1');
  m.ingest(ev('traffic', 'rcvp=1, rcvb=1, sentp=1, sentb=1', 2), 'run1');
  m.ingest(ev('status', 'new lifetime=600', 3), 'run2');
  assert.equal(m.openCount, 2);
  assert.equal(m.closeRun('run1', 9, 'child-exit'), 1);
  const closed = m.drainDirty().find((r) => r.run === 'run1')!;
  assert.deepEqual(
    [closed.endReason, closed.endedAt, closed.complete, closed.client],
    ['child-exit', 9, false, [1, 1, 1, 1]],
  );
  assert.equal(m.openCount, 1);
});

test('traffic with no status is unattributed; a deleted allocation without totals closes after the grace', () => {
  const m = new AllocationModel({ deleteGraceMs: 1000 });
  m.ingest(ev('traffic', 'rcvp=1, rcvb=104, sentp=0, sentb=0', 1, '5', ''), 'run1');
  assert.equal(m.openCount, 0, 'not a user allocation');
  m.ingest(ev('status', 'new lifetime=600', 1, '6'), 'run1');
  m.ingest(ev('traffic', 'rcvp=2, rcvb=20, sentp=2, sentb=20', 2, '6'), 'run1');
  m.ingest(ev('status', 'deleted', 3, '6'), 'run1');
  m.tick(500);
  assert.equal(m.openCount, 1);
  m.tick(1003);
  assert.equal(m.openCount, 0);
  const r = m.drainDirty().find((x) => x.allocationId === '6')!;
  assert.deepEqual([r.endReason, r.endedAt, r.client], ['deleted', 3, [2, 20, 2, 20]]);
  m.markGap();
});
