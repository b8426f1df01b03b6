import { readdir, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { UserdbReader } from './userdb-reader.js';

/** A failed turnadmin call; the message never contains the password or secret it was given. */
export class TurnadminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TurnadminError';
  }
}

// turnadmin writes /var/log/turn_<pid>_<date>.log on every call and has no flag to stop it.
const TURNADMIN_LOG_DIR = '/var/log';

/**
 * coturn's turnadmin against the SQLite userdb, called with argument arrays (never a shell).
 * turnadmin exits 0 even when it cannot open the database, so "ERROR:" in its output counts
 * as a failure too.
 */
export class Turnadmin {
  private readonly userdb: UserdbReader;

  constructor(
    private readonly bin: string,
    private readonly db: string,
    private readonly realm: string,
    /** Told of each call's pid once it has exited and its log file was removed. */
    private readonly onCall: (call: { action: string; pid: number }) => void = () => {},
  ) {
    this.userdb = new UserdbReader(db);
  }

  async addUser(user: string, password: string): Promise<void> {
    await this.call(['-a', '-b', this.db, '-u', user, '-r', this.realm, '-p', password], [password]);
    this.expect('-a', this.userdb.hasUser(this.realm, user));
  }

  async deleteUser(user: string): Promise<void> {
    await this.call(['-d', '-b', this.db, '-u', user, '-r', this.realm], []);
    this.expect('-d', !this.userdb.hasUser(this.realm, user));
  }

  async addSecret(secret: string): Promise<void> {
    await this.call(['-s', secret, '-b', this.db, '-r', this.realm], [secret]);
    this.expect('-s', this.userdb.hasSecret(this.realm, secret));
  }

  async deleteSecret(secret: string): Promise<void> {
    await this.call([`--delete-secret=${secret}`, '-b', this.db, '-r', this.realm], [secret]);
    this.expect('delete-secret', !this.userdb.hasSecret(this.realm, secret));
  }

  /** A call that exited cleanly but whose change the userdb does not show failed all the same. */
  private expect(action: string, applied: boolean): void {
    if (!applied)
      throw new TurnadminError(
        `turnadmin ${action} exited 0 but the userdb does not show the change (SQLite busy: turnserver was reading)`,
      );
  }

  private async call(args: string[], secrets: string[]): Promise<void> {
    const action = args[0].startsWith('--delete-secret') ? 'delete-secret' : args[0];
    const sub = execa(this.bin, args, { reject: false, timeout: 15_000, stdin: 'ignore', all: true });
    const result = await sub;
    if (sub.pid !== undefined) {
      await removeCallLog(sub.pid);
      this.onCall({ action, pid: sub.pid });
    }
    let output = String(result.all ?? '');
    for (const s of secrets) output = output.split(s).join('[redacted]');
    const errorLine = output.split('\n').find((l) => /ERROR:/.test(l));
    if (result.failed || errorLine) {
      const why =
        result.code === 'ENOENT' ? 'binary not found' : result.timedOut ? 'timed out' : `exit ${result.exitCode}`;
      const detail = (errorLine ?? output.split('\n').filter(Boolean).slice(-2).join(' | ')).trim().slice(0, 400);
      throw new TurnadminError(`turnadmin ${action} failed (${why})${detail ? `: ${detail}` : ''}`);
    }
  }
}

async function removeCallLog(pid: number): Promise<void> {
  try {
    const prefix = `turn_${pid}_`;
    for (const name of await readdir(TURNADMIN_LOG_DIR)) {
      if (name.startsWith(prefix) && name.endsWith('.log')) await rm(`${TURNADMIN_LOG_DIR}/${name}`, { force: true });
    }
  } catch {
    /* no /var/log access: nothing was written there either */
  }
}
