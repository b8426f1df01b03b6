import { readdir, rm } from 'node:fs/promises';
import { execa } from 'execa';

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
  constructor(
    private readonly bin: string,
    private readonly db: string,
    private readonly realm: string,
    /** Told of each call's pid once it has exited and its log file was removed. */
    private readonly onCall: (call: { action: string; pid: number }) => void = () => {},
  ) {}

  addUser(user: string, password: string): Promise<void> {
    return this.call(['-a', '-b', this.db, '-u', user, '-r', this.realm, '-p', password], [password]);
  }

  deleteUser(user: string): Promise<void> {
    return this.call(['-d', '-b', this.db, '-u', user, '-r', this.realm], []);
  }

  addSecret(secret: string): Promise<void> {
    return this.call(['-s', secret, '-b', this.db, '-r', this.realm], [secret]);
  }

  deleteSecret(secret: string): Promise<void> {
    return this.call([`--delete-secret=${secret}`, '-b', this.db, '-r', this.realm], [secret]);
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
