import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadParameter, DEFAULT_LIMIT, DEFAULT_WINDOW_MS, parseUsageQuery } from '../../src/http/routes/usage-params.js';
import { decodeCursor, encodeCursor } from '../../src/stats/usage/usage-cursor.js';
import { formatUsage, TABLE_SAMPLE_ROWS, UsageFormatter } from '../../src/stats/usage/usage-format.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const param = (q: Record<string, unknown>) => {
  try {
    parseUsageQuery(q, NOW);
    return null;
  } catch (err) {
    assert.ok(err instanceof BadParameter, String(err));
    return err.parameter;
  }
};

test('GET /usage parameters: defaults, the 24-hour window, and a 400 naming each bad one', () => {
  const r = parseUsageQuery({}, NOW);
  assert.equal(r.view, 'allocation');
  assert.equal(r.limit, DEFAULT_LIMIT);
  assert.deepEqual(r.filter, { from: NOW - DEFAULT_WINDOW_MS });
  const to = '2026-05-01T00:00:00Z';
  assert.equal(parseUsageQuery({ to }, NOW).filter.from, Date.parse(to) - DEFAULT_WINDOW_MS);
  assert.equal(param({ limit: '0' }), 'limit');
  assert.equal(param({ limit: '10001' }), 'limit');
  assert.equal(param({ limit: '1.5' }), 'limit');
  assert.equal(param({ limit: ['1', '2'] }), 'limit');
  assert.equal(param({ limit: '10000' }), null);
  assert.equal(param({ from: 'soon' }), 'from');
  assert.equal(param({ to: 'later' }), 'to');
  assert.equal(param({ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }), 'from');
  assert.equal(param({ user: '' }), 'user');
  assert.equal(param({ by: 'host' }), 'by');
  assert.equal(param({ format: 'xml' }), 'format');
  assert.equal(param({ cursor: '!!' }), 'cursor');
});

test('a cursor carries its query, round-trips, and continues only that query', () => {
  const filter = { user: 'alice', from: NOW - 1000, to: NOW };
  const cursor = encodeCursor({ view: 'session', filter, key: [NOW - 500, 'example.org', 'alice'] });
  assert.match(cursor, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeCursor(cursor), { view: 'session', filter, key: [NOW - 500, 'example.org', 'alice'] });
  const r = parseUsageQuery({ cursor, limit: '50' }, NOW);
  assert.deepEqual([r.view, r.filter, r.after, r.limit], ['session', filter, [NOW - 500, 'example.org', 'alice'], 50]);
  assert.equal(param({ cursor, by: 'session', user: 'alice' }), null);
  assert.equal(param({ cursor, by: 'user' }), 'cursor');
  assert.equal(param({ cursor, user: 'bob' }), 'cursor');
  for (const forged of [[], ['session', null, null, null, []], ['x', null, null, null, [1]], { a: 1 }])
    assert.throws(() => decodeCursor(Buffer.from(JSON.stringify(forged)).toString('base64url')), /cursor is not valid/);
});

test('the formatter streams JSON, CSV and a table whose widths come from its first rows', () => {
  const rows = [
    { a: 1, b: 'x,y' },
    { a: 22, b: null },
  ];
  assert.deepEqual(JSON.parse(formatUsage(rows, 'json')), rows);
  assert.equal(formatUsage([], 'json'), '[]\n');
  assert.equal(formatUsage(rows, 'csv'), 'a,b\n1,"x,y"\n22,\n');
  assert.equal(formatUsage(rows, 'table'), 'a   b\n--  ---\n1   x,y\n22\n');
  assert.equal(formatUsage([], 'table'), '(no usage)\n');
  // Past the sample, rows go out at once; a longer late value overflows, nothing is cut.
  const f = new UsageFormatter('table');
  let out = '';
  for (let i = 0; i < TABLE_SAMPLE_ROWS; i++) out += f.row({ n: i % 10 });
  assert.equal(out.split('\n').length - 1, TABLE_SAMPLE_ROWS + 2);
  assert.equal(f.row({ n: 123456 }), '123456\n');
  assert.equal(f.end(), '');
});
