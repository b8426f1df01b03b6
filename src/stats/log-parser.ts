import type { UsageEvent } from './events.js';

const SESSION = 'session ';

/** Text between `open` and the LAST occurrence of `close` after it (usernames may contain anything). */
function between(s: string, open: string, close: string, from = 0): [string, number] | null {
  const a = s.indexOf(open, from);
  if (a < 0) return null;
  const b = s.lastIndexOf(close);
  if (b < a + open.length) return null;
  return [s.slice(a + open.length, b), b + close.length];
}

/** `realm=<R>, username=<U><tail>`: realm has no '>', the username ends at the last tail marker. */
function realmAndUser(rest: string, tail: string): { realm: string; username: string; after: number } | null {
  if (!rest.startsWith('realm=<')) return null;
  const r = rest.indexOf('>, username=<', 7);
  if (r < 0) return null;
  const u = between(rest, '>, username=<', tail, r);
  return u ? { realm: rest.slice(7, r), username: u[0], after: u[1] } : null;
}

function counters(s: string): [number, number, number, number] | null {
  const m = /^(\d+), rb=(\d+), sp=(\d+), sb=(\d+)\s*$/.exec(s);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] : null;
}

/**
 * One turnserver log line (with `verbose` on) → a UsageEvent, or null for the many lines that
 * are not one. The lines are what turnserver also publishes to redis-statsdb
 * (turn_report_session_usage and the allocation status reports):
 *   session 000000000000000002: new, realm=<r>, username=<u>, lifetime=600
 *   session …: refreshed, realm=<r>, username=<u>, lifetime=0
 *   session …: usage: realm=<r>, username=<u>, rp=4, rb=332, sp=4, sb=352
 *   session …: peer usage: realm=<r>, username=<u>, rp=0, rb=0, sp=0, sb=0
 *   session …: closed (2nd stage), user <u> realm <r> origin <>, local A, remote B, reason: text
 *   session …: delete: realm=<r>, username=<u>
 */
export function parseLogLine(line: string, at: number): UsageEvent | null {
  const s = line.indexOf(SESSION);
  if (s < 0) return null; // the cheap test that rejects most lines
  let i = s + SESSION.length;
  const idStart = i;
  while (i < line.length && line.charCodeAt(i) >= 48 && line.charCodeAt(i) <= 57) i++;
  if (i === idStart || !line.startsWith(': ', i)) return null;
  const allocationId = line.slice(idStart, i);
  const rest = line.slice(i + 2);
  const base = { source: 'log' as const, at, allocationId };

  if (rest.startsWith('new, ') || rest.startsWith('refreshed, ')) {
    const status = rest.startsWith('new') ? 'new' : 'refreshed';
    const body = rest.slice(status.length + 2);
    const ru = realmAndUser(body, '>, lifetime=');
    if (!ru) return null;
    const lifetime = Number(body.slice(ru.after));
    if (!Number.isInteger(lifetime)) return null;
    return { ...base, realm: ru.realm, username: ru.username, kind: 'status', status, lifetime, transport: null, local: null, remote: null };
  }
  const traffic = rest.startsWith('usage: ') ? 'traffic' : rest.startsWith('peer usage: ') ? 'traffic/peer' : null;
  if (traffic) {
    const body = rest.slice(traffic === 'traffic' ? 7 : 12);
    const ru = realmAndUser(body, '>, rp=');
    const c = ru && counters(body.slice(ru.after));
    if (!ru || !c) return null;
    return { ...base, realm: ru.realm, username: ru.username, kind: traffic, rcvp: c[0], rcvb: c[1], sentp: c[2], sentb: c[3] };
  }
  if (rest.startsWith('delete: ')) {
    const body = rest.slice(8).trimEnd();
    const ru = realmAndUser(body, '>');
    if (!ru || ru.after !== body.length) return null;
    return { ...base, realm: ru.realm, username: ru.username, kind: 'status', status: 'deleted', lifetime: null, transport: null, local: null, remote: null };
  }
  if (rest.startsWith('closed (2nd stage), user <')) {
    const tail = /> realm <([^>]*)> origin <.*>, local (\S*), remote (\S*), reason: (.*)$/.exec(rest);
    if (!tail) return null;
    const username = rest.slice(26, tail.index);
    return { ...base, realm: tail[1], username, kind: 'closed', reason: tail[4].trim(), local: tail[2] || null, remote: tail[3] || null };
  }
  return null;
}
