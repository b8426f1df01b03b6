import { readdirSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { isAlive } from '../../src/process/pids.js';

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
 * turnadmin log files (/var/log/turn_<pid>_<date>.log) written since `since` whose turnadmin
 * has exited: the monitor must remove each one its call made.
 */
export function leftoverTurnadminLogs(since: number): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/var/log');
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = /^turn_(\d+)_.*\.log$/.exec(n);
    if (!m || isAlive(Number(m[1]))) return false;
    try {
      return statSync(`/var/log/${n}`).mtimeMs >= since;
    } catch {
      return false;
    }
  });
}
