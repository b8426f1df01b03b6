import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisEventParser } from '../../src/stats/sources/redis/redis-events.js';

const B = (s: string) => Buffer.from(s);
const T = 'rcvp=1, rcvb=2, sentp=3, sentb=4';

test("the owner cache never lends one topic's realm or username to another with the same allocation id", () => {
  const p = new RedisEventParser();
  const parse = (c: string, m = T) => p.parse(B(c), B(m), 0);
  assert.equal(parse('turn/realm/a.org/user/alice/allocation/000000000000000007/traffic')?.username, 'alice');
  // Same id, same length, another user (a later turnserver run reuses ids).
  assert.equal(parse('turn/realm/a.org/user/bobby/allocation/000000000000000007/traffic')?.username, 'bobby');
  assert.equal(parse('turn/realm/b.org/user/bobby/allocation/000000000000000007/traffic')?.realm, 'b.org');
  // A username that itself ends in '/allocation/<same id>'.
  const nested = parse(
    'turn/realm/b.org/user/bobby/allocation/000000000000000007/x/allocation/000000000000000007/traffic/peer',
  );
  assert.equal(nested?.username, 'bobby/allocation/000000000000000007/x');
  assert.equal(nested?.kind, 'traffic/peer');
  // Ids beyond 2^53 that collide as numbers stay apart.
  assert.equal(parse('turn/user/u1/allocation/9007199254740993/traffic')?.allocationId, '9007199254740993');
  assert.equal(parse('turn/user/u2/allocation/9007199254740992/traffic')?.allocationId, '9007199254740992');
  assert.equal(parse('turn/user/u1/allocation/9007199254740993/traffic')?.username, 'u1');
  // A valid topic cached, then a malformed one with the same digits: still malformed.
  assert.equal(parse('turn/junk/000000000000000007/traffic'), null);
  assert.equal(parse('turn/realm/b.org/user/bobby/allocation/000000000000000007/traffic', 'rcvp=x'), null);
  // UTF-8 usernames and empty ones.
  assert.equal(parse('turn/realm/a.org/user/zoë:ü/allocation/12/status', 'deleted')?.username, 'zoë:ü');
  assert.equal(parse('turn/user//allocation/13/traffic')?.username, '');
  // Counters in another order or spacing go through the tolerant path.
  const loose = parse('turn/user/u/allocation/14/traffic', 'sentb=4,rcvp=1 , rcvb=2, sentp=3');
  assert.deepEqual([loose?.kind === 'traffic' && loose.rcvp, loose?.kind === 'traffic' && loose.sentb], [1, 4]);
});
