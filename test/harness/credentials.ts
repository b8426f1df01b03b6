import { readdirSync } from 'node:fs';
import Database from 'better-sqlite3';

/** Users and secrets as turnserver will read them from the SQLite userdb. */
export function userdbContents(db: string): { users: string[]; secrets: string[] } {
  const conn = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const users = conn.prepare('SELECT name FROM turnusers_lt').pluck().all() as string[];
    let secrets: string[] = [];
    try {
      secrets = conn.prepare('SELECT value FROM turn_secret').pluck().all() as string[];
    } catch {
      /* table made on first secret */
    }
    return { users: users.sort(), secrets: secrets.sort() };
  } finally {
    conn.close();
  }
}

/**
 * turnadmin log files (/var/log/turn_<pid>_<date>.log) left by the given turnadmin calls (pids
 * from the monitor's `turnadmin-call` log lines): the monitor must remove each one its call made.
 * Scoped to those pids because other tests running at the same time call turnadmin too.
 */
export function leftoverTurnadminLogs(pids: number[]): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/var/log');
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = /^turn_(\d+)_.*\.log$/.exec(n);
    return m !== null && pids.includes(Number(m[1]));
  });
}
