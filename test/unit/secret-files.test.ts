import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { configWarnings, ConfigError, loadConfig } from '../../src/config/load.js';
import { digestId, nodeAcl } from '../../src/discovery/zk-session.js';
import { describePgError, secretsOf } from '../../src/export/pg-url.js';

const KEY = 'file-key-0123456789ab';
const WHSEC = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;

function withDir(body: (dir: string, write: (name: string, text: string, mode?: number) => string) => void): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-files-'));
  try {
    body(dir, (name, text, mode = 0o600) => {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      chmodSync(file, mode);
      return file;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('every …File twin is read at load; the secret lands in its key; others-readable files warn', () => {
  withDir((dir, write) => {
    write(
      'keys',
      `# comment\n${KEY}\n\n{"name":"billing","sha256":"${createHash('sha256').update('x'.repeat(16)).digest('hex')}","scopes":["usage"]}\n`,
    );
    write('pg', 'postgres://u:pg-pass-4711@127.0.0.1:5432/db\n', 0o640);
    write('zk', 'monitor:zk-pass-4711\n');
    write('redis', 'redis://:redis-pass@127.0.0.1:6379/0\n', 0o644);
    write('hook', `${WHSEC}\n`);
    const file = write(
      'config.json',
      JSON.stringify({
        http: { host: '0.0.0.0', apiKeysFile: 'keys' },
        export: { postgres: { urlFile: 'pg' } },
        zookeeper: { authFile: 'zk' },
        redis: { urlFile: 'redis' },
        webhooks: { endpoints: [{ url: 'https://h.example/x', secretFile: 'hook' }] },
      }),
    );
    const c = loadConfig(file);
    assert.equal(c.http.apiKeys[0], KEY);
    assert.equal((c.http.apiKeys[1] as { name: string }).name, 'billing');
    assert.equal(c.export.postgres.url, 'postgres://u:pg-pass-4711@127.0.0.1:5432/db');
    assert.equal(c.zookeeper.auth, 'monitor:zk-pass-4711');
    assert.equal(c.redis.url, 'redis://:redis-pass@127.0.0.1:6379/0');
    assert.equal(c.webhooks.endpoints[0].secret, WHSEC);
    const warnings = configWarnings(c).join('\n');
    assert.match(
      warnings,
      new RegExp(`"export\\.postgres\\.urlFile": the secret file ${path.join(dir, 'pg')} is readable by group `),
    );
    assert.match(warnings, /"redis\.urlFile": .* readable by group and others \(mode 644\)/);
    assert.equal(configWarnings(c).length, 2);
    assert.ok(!warnings.includes('pass'));
  });
});

test('secret file errors name the key and the file, never the content; both set is exit 2', () => {
  withDir((_dir, write) => {
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [
        { http: { apiKeysFile: 'keys' } },
        'keys',
        'short-secret\n',
        /"http\.apiKeysFile": line 1 of .*keys: API keys must be at least 16/,
      ],
      [
        { http: { apiKeysFile: 'keys' } },
        'keys',
        '{"name":"a","key":"secret-0123456789ab"',
        /line 1 of .*keys is not valid JSON/,
      ],
      [
        { http: { apiKeysFile: 'keys' } },
        'keys',
        '{"name":"a","key":"secret-0123456789ab","scopes":["root"]}',
        /line 1 of .*: scopes\.0/,
      ],
      [{ http: { apiKeysFile: 'keys' } }, 'keys', '# nothing\n', /"http\.apiKeysFile": .*keys holds no key/],
      [{ http: { apiKeysFile: 'missing' } }, 'keys', '', /"http\.apiKeysFile": cannot read .*missing \(ENOENT\)/],
      [
        { export: { postgres: { urlFile: 'pg' } } },
        'pg',
        'mysql://secret-pw',
        /"export\.postgres\.urlFile": the file .*pg must hold one postgres/,
      ],
      [
        { zookeeper: { authFile: 'zk' } },
        'zk',
        'secret-pw',
        /"zookeeper\.authFile": the file .*zk must hold user:password/,
      ],
      [
        { zookeeper: { auth: 'a:secret-pw', authFile: 'zk' } },
        'zk',
        'a:b',
        /"zookeeper\.authFile": set either auth or authFile, not both/,
      ],
      [
        { redis: { url: 'redis://:secret-pw@h', urlFile: 'r' } },
        'r',
        'x',
        /"redis\.urlFile": set either url or urlFile/,
      ],
      [
        { export: { postgres: { url: 'postgres://secret-pw@h/d', urlFile: 'pg' } } },
        'pg',
        'x',
        /"export\.postgres\.urlFile": set either/,
      ],
    ];
    for (const [config, name, text, re] of cases) {
      write(name, text);
      const file = write('config.json', JSON.stringify(config));
      assert.throws(
        () => loadConfig(file),
        (err: Error) => err instanceof ConfigError && re.test(err.message) && !/secret/.test(err.message),
        `${JSON.stringify(config)} → ${re}`,
      );
    }
  });
});

test('ZooKeeper: the digest id is user:base64(sha1(user:password)); the ACL is digest all, world read', () => {
  const expected = createHash('sha1').update('monitor:pw').digest('base64');
  assert.equal(digestId('monitor:pw'), `monitor:${expected}`);
  const acl = nodeAcl('monitor:pw');
  assert.deepEqual(
    acl.map((a) => [a.id.scheme, a.id.id, (a as unknown as { permission: number }).permission]),
    [
      ['digest', `monitor:${expected}`, 31],
      ['world', 'anyone', 1],
    ],
  );
  assert.deepEqual(
    nodeAcl(null).map((a) => a.id.scheme),
    ['world'],
  );
});

test('PostgreSQL TLS errors name sslrootcert, never the password', () => {
  const url = 'postgres://u:pw-4711@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=/etc/tm/root.crt';
  const secrets = secretsOf(url);
  const missing = describePgError(
    Object.assign(new Error(`ENOENT: no such file or directory, open '/etc/tm/root.crt'`), {
      code: 'ENOENT',
      path: '/etc/tm/root.crt',
    }),
    secrets,
    url,
  );
  assert.equal(missing, 'export.postgres.url: sslrootcert /etc/tm/root.crt: cannot read it (ENOENT)');
  const untrusted = describePgError(
    Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
    secrets,
    url,
  );
  assert.match(untrusted, /does not verify against sslrootcert \/etc\/tm\/root\.crt/);
  assert.ok(!untrusted.includes('pw-4711') && !missing.includes('pw-4711'));
});
