import type { UsageEvent } from '../../events.js';

const SESSION = 'session ';

// Greedy `(.*)` for the username backtracks from the end, so it stops at the LAST occurrence of
// the fixed text that follows it: usernames may contain '>', ',' or spaces.
const STATUS = /(new|refreshed), realm=<([^>]*)>, username=<(.*)>, lifetime=(\d+)\s*$/y;
const USAGE = /(usage|peer usage): realm=<([^>]*)>, username=<(.*)>, rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)\s*$/y;
const DELETE = /delete: realm=<([^>]*)>, username=<(.*)>\s*$/y;
const CLOSED =
  /closed \(2nd stage\), user <(.*)> realm <([^>]*)> origin <.*>, local (\S*), remote (\S*), reason: (.*)$/y;

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
  // Fast path: turnserver's own prefix "<uptime>: : session "; anything else falls back to a search.
  let i = 0;
  while (i < line.length && line.charCodeAt(i) >= 48 && line.charCodeAt(i) <= 57) i++;
  if (line.startsWith(': : session ', i)) i += 12;
  else {
    const s = line.indexOf(SESSION);
    if (s < 0) return null; // most lines end here
    i = s + SESSION.length;
  }
  const idStart = i;
  while (i < line.length && line.charCodeAt(i) >= 48 && line.charCodeAt(i) <= 57) i++;
  if (i === idStart || line.charCodeAt(i) !== 58 /* : */ || line.charCodeAt(i + 1) !== 32) return null;
  const allocationId = line.slice(idStart, i);
  const at0 = i + 2; // the regexes are sticky: they match from here without slicing the line
  const c0 = line.charCodeAt(at0);
  let m: RegExpExecArray | null;
  if ((c0 === 110 /* n */ || c0 === 114) /* r */ && ((STATUS.lastIndex = at0), (m = STATUS.exec(line)))) {
    return {
      source: 'log',
      at,
      allocationId,
      realm: m[2],
      username: m[3],
      kind: 'status',
      status: m[1] as 'new' | 'refreshed',
      lifetime: Number(m[4]),
      transport: null,
      local: null,
      remote: null,
    };
  }
  if ((c0 === 117 /* u */ || c0 === 112) /* p */ && ((USAGE.lastIndex = at0), (m = USAGE.exec(line)))) {
    return {
      source: 'log',
      at,
      allocationId,
      realm: m[2],
      username: m[3],
      kind: m[1] === 'usage' ? 'traffic' : 'traffic/peer',
      rcvp: Number(m[4]),
      rcvb: Number(m[5]),
      sentp: Number(m[6]),
      sentb: Number(m[7]),
    };
  }
  if (c0 === 100 /* d */ && ((DELETE.lastIndex = at0), (m = DELETE.exec(line)))) {
    return {
      source: 'log',
      at,
      allocationId,
      realm: m[1],
      username: m[2],
      kind: 'status',
      status: 'deleted',
      lifetime: null,
      transport: null,
      local: null,
      remote: null,
    };
  }
  if (c0 === 99 /* c */ && ((CLOSED.lastIndex = at0), (m = CLOSED.exec(line)))) {
    return {
      source: 'log',
      at,
      allocationId,
      realm: m[2],
      username: m[1],
      kind: 'closed',
      reason: m[5].trim(),
      local: m[3] || null,
      remote: m[4] || null,
    };
  }
  return null;
}
