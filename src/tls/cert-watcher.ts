import { EventEmitter } from 'node:events';
import { realpath, stat } from 'node:fs/promises';

/** Where a path leads now: certbot swaps symlinks, editors rename, cp rewrites in place. */
export async function pathIdentity(file: string): Promise<string> {
  try {
    const target = await realpath(file);
    const s = await stat(target);
    return `${target}|${s.dev}:${s.ino}|${s.mtimeMs}|${s.size}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export interface CertWatcherEvents {
  /** The files changed and have been still for one poll: time to check the new pair. */
  change: [];
}

/**
 * Polls the identity (realpath, device, inode, mtime, size) of the certificate and key paths.
 * A change is reported once the identities have held still for one more poll, so a pair being
 * written file by file is checked once it is complete. Two stat calls per poll: cheap enough.
 */
export class CertWatcher extends EventEmitter<CertWatcherEvents> {
  private timer: NodeJS.Timeout | null = null;
  private seen = '';
  private pending: string | null = null;
  private polling = false;

  constructor(
    private readonly files: readonly string[],
    private readonly pollMs: number,
  ) {
    super();
  }

  private async identity(): Promise<string> {
    return (await Promise.all(this.files.map(pathIdentity))).join('\n');
  }

  /** Take the current identity as the loaded one, then poll. */
  async start(): Promise<void> {
    if (this.timer) return;
    this.seen = await this.identity();
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  /** The current files were loaded (or rejected) by someone else: do not report them again. */
  async markSeen(): Promise<void> {
    this.seen = await this.identity();
    this.pending = null;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = await this.identity();
      if (now === this.seen) {
        this.pending = null;
      } else if (now === this.pending) {
        this.seen = now;
        this.pending = null;
        if (this.timer) this.emit('change');
      } else {
        this.pending = now;
      }
    } finally {
      this.polling = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.pending = null;
  }
}
