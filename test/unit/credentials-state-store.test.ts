import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadState, saveState, type CredentialState } from '../../src/credentials/state-store.js';

const sample: CredentialState = {
  version: 1,
  mode: 'userdb',
  realm: 'example.org',
  entries: [{ id: 'tm-a', secret: 'pw-a', issuedAt: 1000, expiresAt: 61_000 }],
  denied: [{ clientId: 'alice', revokedAt: 1000, until: 8_200_000, reason: 'revoked', by: null, unsynced: false }],
  liftsUnsynced: [],
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cred-state-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('save then load round-trips; the file is 0600 and no temp file is left', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'credential.json');
    await saveState(file, sample);
    assert.deepEqual(await loadState(file), { state: sample });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['credential.json']);
  }));

test('a missing file is normal: no state, no problem', () =>
  withDir(async (dir) => {
    assert.deepEqual(await loadState(path.join(dir, 'credential.json')), { state: null, problem: null });
  }));

test('corrupt JSON or a wrong shape is reported, never thrown, and never echoes the content', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'credential.json');
    await writeFile(file, '{"secret":"leaky-secret-value"');
    const broken = await loadState(file);
    assert.equal(broken.state, null);
    assert.match(String('problem' in broken && broken.problem), /not valid JSON/);
    assert.doesNotMatch(JSON.stringify(broken), /leaky-secret-value/);

    await writeFile(file, JSON.stringify({ ...sample, version: 2, entries: [{ secret: 'leaky-secret-value' }] }));
    const wrongShape = await loadState(file);
    assert.equal(wrongShape.state, null);
    assert.match(String('problem' in wrongShape && wrongShape.problem), /unexpected shape/);
    assert.doesNotMatch(JSON.stringify(wrongShape), /leaky-secret-value/);
  }));

test('an unreadable path (a directory) is a problem, not an exception', () =>
  withDir(async (dir) => {
    const result = await loadState(dir);
    assert.equal(result.state, null);
    assert.match(String('problem' in result && result.problem), /cannot read/);
  }));

test('a state file written before revocation existed loads with an empty deny list', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'credential.json');
    const { denied: _denied, ...old } = sample;
    await writeFile(file, JSON.stringify(old));
    assert.deepEqual(await loadState(file), { state: { ...old, denied: [] } });
  }));

test('a file written before the fleet deny list loads with the new fields defaulted', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'credential.json');
    const old = { ...sample, denied: [{ clientId: 'alice', revokedAt: 1000, until: 8_200_000 }] } as Record<
      string,
      unknown
    >;
    delete old.liftsUnsynced;
    await writeFile(file, JSON.stringify(old));
    assert.deepEqual(await loadState(file), { state: sample });
  }));
