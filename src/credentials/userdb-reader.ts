import Database from 'better-sqlite3';

/**
 * What turnserver will read from coturn's SQLite userdb. turnadmin ignores the result of its
 * write (dbd_sqlite.c: `sqlite3_step` unchecked) and exits 0 even when SQLite refused it because
 * turnserver was reading at that moment (rollback journal, no busy handler), so every change is
 * read back here. Opened per question: the userdb may be replaced under us.
 */
export class UserdbReader {
  constructor(private readonly file: string) {}

  hasUser(realm: string, name: string): boolean {
    return this.exists('SELECT 1 FROM turnusers_lt WHERE realm = ? AND name = ?', realm, name);
  }

  hasSecret(realm: string, value: string): boolean {
    return this.exists('SELECT 1 FROM turn_secret WHERE realm = ? AND value = ?', realm, value);
  }

  private exists(sql: string, ...params: string[]): boolean {
    const db = new Database(this.file, { readonly: true, fileMustExist: true, timeout: 2000 });
    try {
      return db.prepare(sql).get(...params) !== undefined;
    } catch (err) {
      // turnadmin makes each table on first use: none yet means no such row.
      if (/no such table/.test((err as Error).message)) return false;
      throw err;
    } finally {
      db.close();
    }
  }
}
