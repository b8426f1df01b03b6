import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeFleet } from '../../src/credentials/deny-list.js';
import { decodeDenied, encodeDenied } from '../../src/credentials/fleet-deny.js';
import { diffChildren } from '../../src/credentials/fleet-deny-nodes.js';
import type { DeniedClient } from '../../src/credentials/state-store.js';

const d = (clientId: string, revokedAt: number, over: Partial<DeniedClient> = {}): DeniedClient => ({
  clientId,
  revokedAt,
  until: revokedAt + 1000,
  reason: 'revoked',
  by: 'host-a',
  unsynced: false,
  ...over,
});

test('a deny node round-trips through its JSON ({until, reason, revokedAt, by}); junk is skipped', () => {
  const e = d('alice', Date.UTC(2026, 0, 1), { reason: 'quota' });
  assert.deepEqual(JSON.parse(encodeDenied(e).toString()), {
    until: '2026-01-01T00:00:01.000Z',
    reason: 'quota',
    revokedAt: '2026-01-01T00:00:00.000Z',
    by: 'host-a',
  });
  assert.deepEqual(decodeDenied('alice', encodeDenied(e)), e);
  assert.equal(decodeDenied('x', Buffer.from('nope')), null);
  assert.equal(
    decodeDenied('x', Buffer.from('{"until":"2026-01-01","reason":"other","revokedAt":"2026-01-01"}')),
    null,
  );
  assert.equal(decodeDenied('x', undefined), null);
});

test('mergeFleet: the fleet list wins, except unsynced local entries (newer) and unsynced lifts', () => {
  const now = 5000;
  // Remote only: taken (synced). Local synced entry missing remotely: lifted elsewhere, dropped.
  assert.deepEqual(mergeFleet([d('gone', 4500)], [d('bob', 4500)], [], now), [d('bob', 4500)]);
  // An unsynced local revoke survives a read that does not have it yet, and beats an older remote one.
  const mine = d('alice', 4800, { unsynced: true });
  assert.deepEqual(mergeFleet([mine], [d('alice', 4200)], [], now), [mine]);
  // A newer remote entry beats it.
  assert.deepEqual(mergeFleet([mine], [d('alice', 4900)], [], now), [d('alice', 4900)]);
  // An unsynced lift keeps the remote entry off; expired entries are never taken.
  assert.deepEqual(mergeFleet([], [d('carol', 4500), d('old', 1000)], ['carol'], now), []);
  assert.deepEqual(mergeFleet([d('x', 1000, { unsynced: true })], [], [], now), []);
});

test('diffChildren: only names not cached are read, cached names no longer listed are dropped', () => {
  const cached = new Map([
    ['alice', 1],
    ['bob', 2],
  ]);
  assert.deepEqual(diffChildren(cached, ['alice', 'carol']), { added: ['carol'], gone: ['bob'] });
  assert.deepEqual(diffChildren(cached, ['bob', 'alice']), { added: [], gone: [] });
  assert.deepEqual(diffChildren(new Map(), ['x']), { added: ['x'], gone: [] });
});
