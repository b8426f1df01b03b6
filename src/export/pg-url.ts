/**
 * Keeping the connection string's password out of every message: pg's errors name hosts and
 * users (never the password as far as seen), but a parse error carries the whole string in its
 * `input` property, and a message may one day quote it. Everything shown goes through redact().
 */
export function secretsOf(url: string): string[] {
  const out = [url];
  const m = /^[a-z]+:\/\/[^:/@]*:([^@/]*)@/i.exec(url);
  if (m && m[1]) {
    out.push(m[1]);
    try {
      out.push(decodeURIComponent(m[1]));
    } catch {
      /* not decodable: the raw form is enough */
    }
  }
  if (process.env.PGPASSWORD) out.push(process.env.PGPASSWORD);
  return [...new Set(out.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
}

export function redact(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

/** The file a connection string names in `param` (sslrootcert, sslcert, sslkey), if any. */
export function sslFileOf(url: string | undefined, param: string): string | null {
  if (!url) return null;
  try {
    return new URL(url).searchParams.get(param);
  } catch {
    return null;
  }
}

/** node:tls's codes for a server certificate that does not verify (chain, expiry, name). */
const CERT_CODE = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID/;

/**
 * One line for logs and /health, naming the config key; `err` may be anything pg threw. With
 * `url`, TLS problems name the parameter at fault: an sslrootcert/sslcert/sslkey file that cannot
 * be read (pg reads them when the client is made), a server certificate that does not verify.
 */
export function describePgError(err: unknown, secrets: string[], url?: string): string {
  const e = err as { message?: string; code?: string; path?: string };
  for (const param of ['sslrootcert', 'sslcert', 'sslkey']) {
    const file = sslFileOf(url, param);
    if (file !== null && e?.path !== undefined && e.path === file && e.code)
      return redact(`export.postgres.url: ${param} ${file}: cannot read it (${e.code})`, secrets);
  }
  const rootcert = sslFileOf(url, 'sslrootcert');
  // A refused connection to a name with several addresses is an AggregateError with no message.
  let reason = e?.message || e?.code || String(err);
  if (e?.code === 'ERR_INVALID_URL')
    reason =
      'not a valid connection string (check the host, port and that special characters in the password are percent-encoded)';
  else if (e?.code === '28P01') reason = `${reason} (wrong password)`;
  else if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') reason = `unknown host (${reason})`;
  else if (typeof e?.code === 'string' && CERT_CODE.test(e.code))
    reason = `${reason} (the server's TLS certificate does not verify ${rootcert !== null ? `against sslrootcert ${rootcert}` : "against the system's CAs (set sslrootcert)"}, or does not name the host)`;
  return redact(`export.postgres.url: ${reason}`, secrets);
}
