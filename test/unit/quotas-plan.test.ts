import assert from 'node:assert/strict';
import { test } from 'node:test';
import { periodBounds, quotaClock, stateOf } from '../../src/quotas/period.js';
import { planCheck, withQuotaDenials, type StateRow } from '../../src/quotas/plan.js';

const P = Date.UTC(2026, 11, 1);
const row = (over: Partial<StateRow> = {}): StateRow => ({
  realm: 'r',
  clientId: 'alice',
  periodStart: P,
  warned: false,
  exceeded: false,
  used: null,
  quota: null,
  ...over,
});
const u = (used: number, quota = 100) => ({ realm: 'r', clientId: 'alice', used, quota });

test('periods are UTC months or days; the state of a usage', () => {
  const t = Date.UTC(2026, 11, 31, 23, 59, 59);
  assert.deepEqual(periodBounds(t, 'month'), { start: P, end: Date.UTC(2027, 0, 1) });
  assert.deepEqual(periodBounds(t, 'day'), { start: Date.UTC(2026, 11, 31), end: Date.UTC(2027, 0, 1) });
  assert.equal(stateOf(79, 100, 0.8), 'ok');
  assert.equal(stateOf(80, 100, 0.8), 'warned');
  assert.equal(stateOf(100, 100, 0.8), 'exceeded');
  assert.equal(stateOf(1e12, null, 0.8), 'ok');
});

test('quota clock: the test hook adds the offset its file holds; unset it is the clock itself', () => {
  const now = () => 1000;
  assert.equal(quotaClock(now, {}), now);
  assert.equal(quotaClock(now, { TURN_MONITOR_QUOTA_CLOCK_FILE: '/nonexistent/file' })(), 1000);
});

test('plan: warn once, exceed once (a straight jump past the quota warns first)', () => {
  let p = planCheck([u(85)], [], P);
  assert.deepEqual(
    p.actions.map((a) => a.kind),
    ['warn'],
  );
  assert.deepEqual(p.save, [row({ warned: true, used: 85, quota: 100 })]);
  p = planCheck([u(90)], p.save, P);
  assert.deepEqual(p.actions, []);
  assert.deepEqual(p.save, []);
  p = planCheck([u(120)], [row({ warned: true })], P);
  assert.deepEqual(
    p.actions.map((a) => a.kind),
    ['exceed'],
  );
  p = planCheck([u(120)], [], P);
  assert.deepEqual(
    p.actions.map((a) => a.kind),
    ['warn', 'exceed'],
  );
  assert.deepEqual(planCheck([u(130)], p.save, P).actions, []);
});

test('plan: a raised quota lifts (in the warning range or below it), the warning is not sent again', () => {
  const exceeded = row({ warned: true, exceeded: true });
  let p = planCheck([u(120, 140)], [exceeded], P);
  assert.deepEqual(
    p.actions.map((a) => [a.kind, a.kind === 'lift' ? a.why : null]),
    [['lift', 'raised']],
  );
  assert.equal(p.save[0].exceeded, false);
  p = planCheck([], [exceeded], P);
  assert.deepEqual(
    p.actions.map((a) => a.kind),
    ['lift'],
  );
  assert.deepEqual(p.save, [{ ...exceeded, exceeded: false }]);
  // Lowered again: exceeded again.
  assert.deepEqual(
    planCheck([u(120)], p.save, P).actions.map((a) => a.kind),
    ['exceed'],
  );
});

test('plan: a new period lifts what was exceeded and forgets the old state', () => {
  const old = row({ periodStart: P - 1, warned: true, exceeded: true });
  let p = planCheck([], [old], P);
  assert.deepEqual(
    p.actions.map((a) => [a.kind, a.kind === 'lift' ? a.why : null]),
    [['lift', 'period']],
  );
  assert.deepEqual(p.drop, [{ realm: 'r', clientId: 'alice' }]);
  p = planCheck([], [row({ periodStart: P - 1, warned: true })], P);
  assert.deepEqual(p.actions, []);
  assert.equal(p.drop.length, 1);
  // Already over in the new period: the old one lifted, then warned and exceeded anew.
  p = planCheck([u(200)], [old], P);
  assert.deepEqual(
    p.actions.map((a) => a.kind),
    ['lift', 'warn', 'exceed'],
  );
  assert.equal(p.save[0].periodStart, P);
});

test('a quota denial the state does not record (enforcer killed between the two) is lifted once the client is under its quota', () => {
  // No state row at all: the denial counts as exceeded in this period.
  let known = withQuotaDenials([], ['alice'], 'r', P);
  assert.deepEqual(known, [
    { realm: 'r', clientId: 'alice', periodStart: P, warned: true, exceeded: true, used: null, quota: null },
  ]);
  let plan = planCheck([], known, P);
  assert.deepEqual(
    plan.actions.map((a) => [a.kind, a.clientId, a.kind === 'lift' && a.why]),
    [['lift', 'alice', 'raised']],
  );
  // A row of another period that says not exceeded: the same, in this period, keeping its realm.
  const stale = { realm: 'x', clientId: 'alice', periodStart: 0, warned: true, exceeded: false, used: 5, quota: 9 };
  known = withQuotaDenials([stale], ['alice'], 'r', P);
  assert.deepEqual(known, [{ ...stale, periodStart: P, exceeded: true }]);
  // Still over its quota: nothing to do but keep the state.
  plan = planCheck([{ realm: 'x', clientId: 'alice', used: 10, quota: 9 }], known, P);
  assert.deepEqual(plan.actions, []);
  // A row that records the denial already, and a revoke by hand, are left as they are.
  const recorded = { ...stale, periodStart: 0, exceeded: true };
  assert.deepEqual(withQuotaDenials([recorded], ['alice'], 'r', P), [recorded]);
  assert.deepEqual(withQuotaDenials([], [], 'r', P), []);
});
