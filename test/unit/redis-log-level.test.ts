import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redisLineLevel } from '../../src/stats/sources/redis/redis-log.js';

const line = (mark: string, text: string) => `28740:M 01 Dec 2026 16:14:51.382 ${mark} ${text}`;

test("redis lines take their level from redis's own mark", () => {
  assert.deepEqual(redisLineLevel(line('#', 'WARNING Memory overcommit must be enabled!')), {
    level: 'warn',
    text: 'WARNING Memory overcommit must be enabled!',
  });
  assert.deepEqual(redisLineLevel(line('*', 'Ready to accept connections')), {
    level: 'info',
    text: 'Ready to accept connections',
  });
  assert.deepEqual(redisLineLevel(line('-', 'Accepted 127.0.0.1:50000')), {
    level: 'debug',
    text: 'Accepted 127.0.0.1:50000',
  });
  assert.deepEqual(redisLineLevel(line('.', 'DB 0: 1 keys')), { level: 'debug', text: 'DB 0: 1 keys' });
  // A '#' inside the text is not the mark.
  assert.equal(redisLineLevel(line('*', 'Running mode=standalone # port=1')).level, 'info');
});

test("redis's lifecycle lines, written with the warning mark, are info", () => {
  for (const text of [
    'oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo',
    'Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=1, just started',
    'Configuration loaded',
    'Server initialized',
    'Received SIGTERM scheduling shutdown...',
    'User requested shutdown...',
    'Redis is now ready to exit, bye bye...',
  ]) {
    assert.equal(redisLineLevel(`28740:C 01 Dec 2026 16:14:51.372 # ${text}`).level, 'info', text);
  }
});

test('a line not in redis format is debug, kept whole', () => {
  assert.deepEqual(redisLineLevel('  _._  '), { level: 'debug', text: '  _._  ' });
});
