import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { describePgError, redact, secretsOf } from '../../src/export/pg-url.js';
import { arrayLiteral, SHIP_COLUMNS, SHIP_SQL, shipParams } from '../../src/export/pg-schema.js';
import { renderResults } from '../../src/cli/fleet.js';

test('export.postgres: defaults off; the url must be postgres:// and is never echoed', () => {
  const c = buildConfig({}, '/x');
  assert.deepEqual(c.export.postgres, {
    url: null,
    hostId: null,
    intervalSec: 5,
    batchSize: 500,
    retentionMonths: 3,
    rollupRetentionMonths: 25,
  });
  assert.throws(
    () => buildConfig({ export: { postgres: { retentionMonths: 6, rollupRetentionMonths: 4 } } }, '/x'),
    /export\.postgres\.rollupRetentionMonths/,
  );
  assert.equal(
    buildConfig({ export: { postgres: { url: 'postgresql://u@h/db' } } }, '/x').export.postgres.url,
    'postgresql://u@h/db',
  );
  const url = 'mysql://root:hunter2-secret@db/x';
  assert.throws(
    () => buildConfig({ export: { postgres: { url } } }, '/x'),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /config key "export\.postgres\.url": must be a postgres:\/\/ or postgresql:\/\/ connection string/,
      );
      assert.equal(err.message.includes('hunter2'), false);
      return true;
    },
  );
  assert.throws(() => buildConfig({ export: { postgres: { batchSize: 0 } } }, '/x'), /export\.postgres\.batchSize/);
});

test('pg errors are named by the key, with the password (raw or percent-decoded) redacted', () => {
  const url = 'postgres://bill:p%40ss%3Aword@db.example:5432/usage';
  const secrets = secretsOf(url);
  assert.ok(secrets.includes('p@ss:word') && secrets.includes('p%40ss%3Aword'));
  assert.equal(redact(`failed for ${url} with p@ss:word`, secrets), 'failed for *** with ***');
  assert.equal(
    describePgError(
      Object.assign(new Error('password authentication failed for user "bill"'), { code: '28P01' }),
      secrets,
    ),
    'export.postgres.url: password authentication failed for user "bill" (wrong password)',
  );
  assert.match(
    describePgError(Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL', input: url }), secrets),
    /^export\.postgres\.url: not a valid connection string/,
  );
  assert.equal(
    describePgError(new Error(`connect to ${url} refused`), secrets),
    'export.postgres.url: connect to *** refused',
  );
});

test('an error without a message (AggregateError of a refused multi-address connect) still says why', () => {
  assert.equal(
    describePgError(Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' }), []),
    'export.postgres.url: ECONNREFUSED',
  );
});

test('the ship statement: one array per column; counters only grow, the end is set once, the partition key never changes', () => {
  const DAY = 86_400_000;
  const t0 = Date.UTC(2026, 0, 31);
  const row = (suffix: string, started: number, last: number) =>
    SHIP_COLUMNS.map((c) => (c === 'started_at' ? started : c === 'last_event_at' ? new Date(last) : `${c}${suffix}`));
  const params = shipParams('h', [row('', t0, t0 + 5 * DAY), row('2', t0 - DAY, t0)]);
  assert.equal(params.length, 3 + SHIP_COLUMNS.length);
  assert.equal(params[1], '{"allocation_id","allocation_id2"}');
  // The batch's bounds on the partition key: its earliest start, its latest event + a day.
  assert.deepEqual(params.slice(-2), [new Date(t0 - DAY).toISOString(), new Date(t0 + 6 * DAY).toISOString()]);
  assert.equal(arrayLiteral('text', ['a"b', 'c\\d', null, 'e,f}']), '{"a\\"b","c\\\\d",NULL,"e,f}"}');
  assert.equal(arrayLiteral('int', [1, null, 30]), '{1,NULL,30}');
  assert.equal(arrayLiteral('time', [new Date(5), 6]), '{5,6}');
  assert.equal(arrayLiteral('bool', [1, 0, true, null]), '{t,f,t,NULL}');
  assert.equal(new Set(SHIP_SQL.match(/\$\d+/g)).size, 3 + SHIP_COLUMNS.length);
  assert.match(SHIP_SQL, /rcvb = GREATEST\(a\.rcvb, v\.rcvb\)/);
  assert.match(SHIP_SQL, /ended_at = COALESCE\(a\.ended_at, v\.ended_at\)/);
  assert.match(SHIP_SQL, /end_reason = CASE WHEN a\.ended_at IS NULL THEN v\.end_reason/);
  assert.doesNotMatch(SHIP_SQL, /UPDATE [^\n]* SET [^\n]*[ ,]started_at = /);
});

test('fleet output: one aligned line per host', () => {
  const out = renderResults([
    { host: 'a:3478', restAddr: 'x', ok: true, status: 200, detail: '2 sessions', body: [] },
    { host: 'long-host:3478', restAddr: 'y', ok: false, status: null, detail: 'ECONNREFUSED', body: null },
  ]);
  assert.equal(out, 'a:3478          ok     2 sessions\nlong-host:3478  error  ECONNREFUSED\n');
});
