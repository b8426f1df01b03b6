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

/** One line for logs and /health, naming the config key; `err` may be anything pg threw. */
export function describePgError(err: unknown, secrets: string[]): string {
  const e = err as { message?: string; code?: string };
  // A refused connection to a name with several addresses is an AggregateError with no message.
  let reason = e?.message || e?.code || String(err);
  if (e?.code === 'ERR_INVALID_URL')
    reason =
      'not a valid connection string (check the host, port and that special characters in the password are percent-encoded)';
  else if (e?.code === '28P01') reason = `${reason} (wrong password)`;
  else if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') reason = `unknown host (${reason})`;
  return redact(`export.postgres.url: ${reason}`, secrets);
}
