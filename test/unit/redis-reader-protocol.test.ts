import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryBytes, forEachEntry, writeEntry } from '../../src/stats/sources/redis/redis-reader-protocol.js';

test('batch entries: what writeEntry lays out, forEachEntry gives back, byte for byte and in order', () => {
  const messages: [Buffer, Buffer][] = [
    [Buffer.from('turn/user/alice/allocation/1/status'), Buffer.from('new lifetime=600')],
    [Buffer.from('__XXX__'), Buffer.alloc(0)],
    [Buffer.alloc(0), Buffer.from('no channel')],
    [Buffer.from('turn/user/ü/allocation/2/traffic'), Buffer.alloc(70_000, 0x61)], // lengths above 16 bits
  ];
  const buf = Buffer.alloc(messages.reduce((n, [c, m]) => n + entryBytes(c, m), 0));
  let at = 0;
  for (const [c, m] of messages) at = writeEntry(buf, at, c, m);
  assert.equal(at, buf.length);
  const seen: [Buffer, Buffer][] = [];
  forEachEntry(buf, (b, cs, ce, me) => seen.push([Buffer.from(b.subarray(cs, ce)), Buffer.from(b.subarray(ce, me))]));
  assert.deepEqual(seen, messages);
});
