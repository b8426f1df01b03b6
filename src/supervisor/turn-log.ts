export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

// turnserver lines look like "12: : ERROR: text" or "0: (1234): WARNING: text", or are bare
// continuation lines of a multi-line message.
const PREFIX = /^\s*\d+:\s*(?:\(\d+\))?:?\s*/;
const LEVEL = /^(ERROR|WARNING|INFO|DEBUG|CONTROL):\s*/;
const SESSION_CHATTER = /^(session \d+: |IPv[46]\. Local relay addr: )/;

/**
 * turnserver WARNINGs that are expected in the conf the monitor renders: logged at info so that
 * `warn` keeps meaning "look at this". Keep the list short; every other WARNING stays a warning.
 */
const HARMLESS_WARNINGS = [
  // The rendered conf has one listening-ip: RFC 5780 NAT-behaviour discovery needs two.
  /^I cannot support STUN CHANGE_REQUEST functionality because only one IP address is provided/,
];

export interface TurnLogLine {
  level: LogLevel;
  text: string;
}

/** Split one turnserver log line into a level and its text; redacts anything named password. */
export function parseTurnLogLine(line: string): TurnLogLine {
  let text = line.replace(PREFIX, '');
  let level: LogLevel = 'info';
  const m = LEVEL.exec(text);
  if (m) {
    level = m[1] === 'ERROR' ? 'error' : m[1] === 'WARNING' ? 'warn' : m[1] === 'DEBUG' ? 'debug' : 'info';
    text = text.slice(m[0].length);
    if (level === 'warn' && HARMLESS_WARNINGS.some((re) => re.test(text))) level = 'info';
  } else if (/^(Cannot|cannot|bind:|socket:)/.test(text)) {
    level = 'warn';
  } else if (SESSION_CHATTER.test(text)) {
    // Several lines per allocation, already in turnserver's own file: ours stays readable (and cheap) at info.
    level = 'debug';
  }
  return { level, text: text.replace(/(password\s*[=:]\s*)\S+/gi, '$1[redacted]') };
}

/**
 * A line that means turnserver cannot serve as configured: a listener port held by something
 * else, or (with TLS on) no TLS listener because it could not load the certificate, a downgrade
 * it only warns about.
 */
export function startupFailure(line: string): string | null {
  if (/cannot start TLS and DTLS listeners because certificate file is not set properly/.test(line)) {
    return 'turnserver started without its TLS listener: it could not load the certificate (see its WARNING lines)';
  }
  return bindFailure(line);
}

/** A line that means the listener port is held by something else. */
export function bindFailure(line: string): string | null {
  const m = /Cannot bind .*listener socket to addr (\S+)/.exec(line);
  if (!m) return null;
  const port = Number(/:(\d+)$/.exec(m[1])?.[1]);
  const hint =
    port > 0 && port < 1024 ? 'in use, or a port below 1024 without root or cap_net_bind_service?' : 'address in use?';
  return `turnserver cannot bind its listening address ${m[1]} (${hint})`;
}
