/**
 * Parser for the answer of coturn's admin CLI `ps` / `psp` (coturn 4.6.1, see
 * test/fixtures/coturn-cli/). Each session starts with `N) id=<allocation id>, user <name>:`
 * followed by indented detail lines; the listing ends with `Total sessions: N` and, when the
 * listing was cut at cli-max-output-sessions, a `...` line and a warning. Lines it does not know
 * are skipped, so a newer coturn adding a detail line does not break it.
 */

/** One live allocation as coturn's CLI reports it. */
export interface CliSession {
  /** coturn's allocation id (18 digits), as in the redis-statsdb topics and the log. */
  allocationId: string;
  username: string;
  realm: string | null;
  startedSecsAgo: number | null;
  expiresInSec: number | null;
  clientProtocol: string | null;
  relayProtocol: string | null;
  clientAddr: string | null;
  serverAddr: string | null;
  relayAddr: string | null;
  /** coturn's own usage counters (they lag: coturn refreshes them on its own schedule). */
  usage: { rp: number; rb: number; sp: number; sb: number } | null;
  /** Bytes per second as coturn measures them. */
  rate: { r: number; s: number; total: number } | null;
  peers: string[];
}

export interface PsListing {
  sessions: CliSession[];
  /** coturn's `Total sessions: N` (all matching sessions, also those not listed). */
  total: number | null;
  /** The listing was cut at cli-max-output-sessions. */
  truncated: boolean;
}

const HEADER = /^\s*\d+\)\s+id=(\d+),\s+user\s+<(.*)>:\s*$/;
const TOTAL = /^\s*Total sessions:\s*(\d+)\s*$/;
const num = (s: string | undefined) => (s === undefined ? null : Number(s));

export function parsePs(text: string): PsListing {
  const sessions: CliSession[] = [];
  let current: CliSession | null = null;
  let inPeers = false;
  let total: number | null = null;
  let truncated = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    const header = HEADER.exec(line);
    if (header) {
      current = {
        allocationId: header[1], username: header[2], realm: null, startedSecsAgo: null, expiresInSec: null,
        clientProtocol: null, relayProtocol: null, clientAddr: null, serverAddr: null, relayAddr: null,
        usage: null, rate: null, peers: [],
      };
      sessions.push(current);
      inPeers = false;
      continue;
    }
    const t = TOTAL.exec(line);
    if (t) {
      total = Number(t[1]);
      current = null;
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === '...' || /too many output sessions/.test(trimmed)) {
      truncated = true;
      current = null;
      continue;
    }
    if (!current || trimmed === '') continue;
    if (inPeers && /^\S+:\d+$/.test(trimmed)) {
      current.peers.push(trimmed);
      continue;
    }
    inPeers = false;
    let m: RegExpExecArray | null;
    if ((m = /^realm:\s*(.*)$/.exec(trimmed))) current.realm = m[1];
    else if ((m = /^started (\d+) secs ago$/.exec(trimmed))) current.startedSecsAgo = Number(m[1]);
    else if ((m = /^expiring in (-?\d+) secs$/.exec(trimmed))) current.expiresInSec = Number(m[1]);
    else if ((m = /^client protocol (\S+), relay protocol (\S+)$/.exec(trimmed))) {
      current.clientProtocol = m[1];
      current.relayProtocol = m[2];
    } else if ((m = /^client addr (\S+), server addr (\S+)$/.exec(trimmed))) {
      current.clientAddr = m[1];
      current.serverAddr = m[2];
    } else if ((m = /^relay addr (\S+)$/.exec(trimmed))) current.relayAddr = m[1];
    else if ((m = /^usage: rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)/.exec(trimmed))) {
      current.usage = { rp: Number(m[1]), rb: Number(m[2]), sp: Number(m[3]), sb: Number(m[4]) };
    } else if ((m = /^rate: r=(\d+), s=(\d+), total=(\d+)/.exec(trimmed))) {
      current.rate = { r: num(m[1])!, s: num(m[2])!, total: num(m[3])! };
    } else if (trimmed === 'peers:') inPeers = true;
    // anything else (fingerprints, mobile, lines of a newer coturn) is ignored
  }
  return { sessions, total, truncated };
}
