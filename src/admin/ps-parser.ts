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
const PEER = /^\S+:\d+$/;

export function parsePs(text: string): PsListing {
  const sessions: CliSession[] = [];
  let current: CliSession | null = null;
  let inPeers = false;
  let total: number | null = null;
  let truncated = false;
  // One pass; each line is told apart by its first characters, and only then matched (a listing
  // of 1,000 sessions is ~14,000 lines).
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.includes(') id=')) {
      const header = HEADER.exec(line);
      if (header) {
        current = {
          allocationId: header[1],
          username: header[2],
          realm: null,
          startedSecsAgo: null,
          expiresInSec: null,
          clientProtocol: null,
          relayProtocol: null,
          clientAddr: null,
          serverAddr: null,
          relayAddr: null,
          usage: null,
          rate: null,
          peers: [],
        };
        sessions.push(current);
        inPeers = false;
        continue;
      }
    }
    if (line.startsWith('Total sessions:')) {
      const t = TOTAL.exec(line);
      if (t) total = Number(t[1]);
      current = null;
      continue;
    }
    if (line === '...' || line.includes('too many output sessions')) {
      truncated = true;
      current = null;
      continue;
    }
    if (!current) continue;
    if (inPeers && PEER.test(line)) {
      current.peers.push(line);
      continue;
    }
    inPeers = detail(current, line);
  }
  return { sessions, total, truncated };
}

/**
 * One indented detail line of a session; lines it does not know (fingerprints, mobile, a newer
 * coturn's) are ignored. True for the `peers:` line (peer addresses follow).
 */
function detail(s: CliSession, line: string): boolean {
  let m: RegExpExecArray | null;
  switch (line.charCodeAt(0)) {
    case 0x72: // r: realm, relay addr, rate
      if (line.startsWith('realm:')) s.realm = line.slice(6).trim();
      else if ((m = /^relay addr (\S+)$/.exec(line))) s.relayAddr = m[1];
      else if ((m = /^rate: r=(\d+), s=(\d+), total=(\d+)/.exec(line)))
        s.rate = { r: Number(m[1]), s: Number(m[2]), total: Number(m[3]) };
      break;
    case 0x73: // s: started
      if ((m = /^started (\d+) secs ago$/.exec(line))) s.startedSecsAgo = Number(m[1]);
      break;
    case 0x65: // e: expiring
      if ((m = /^expiring in (-?\d+) secs$/.exec(line))) s.expiresInSec = Number(m[1]);
      break;
    case 0x63: // c: client protocol, client addr
      if ((m = /^client protocol (\S+), relay protocol (\S+)$/.exec(line))) {
        s.clientProtocol = m[1];
        s.relayProtocol = m[2];
      } else if ((m = /^client addr (\S+), server addr (\S+)$/.exec(line))) {
        s.clientAddr = m[1];
        s.serverAddr = m[2];
      }
      break;
    case 0x75: // u: usage
      if ((m = /^usage: rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)/.exec(line)))
        s.usage = { rp: Number(m[1]), rb: Number(m[2]), sp: Number(m[3]), sb: Number(m[4]) };
      break;
    case 0x70: // p: peers
      return line === 'peers:';
  }
  return false;
}
