import type { Admin } from '../admin/admin.js';
import type { Config } from '../config/schema.js';
import type { DrainControl } from '../drain/drain.js';
import type { Logger } from '../log/logger.js';
import { parseVersion, turnserverVersion } from '../stats/source-choice.js';
import type { SessionControl } from './session-control.js';

export interface AdminDrainControlOptions {
  admin: Admin;
  control: Pick<SessionControl, 'drainCancel'>;
  /** turnserver's version when already known (the source choice read it). */
  version(): string | null;
  config: Config;
  logger: Logger;
}

/** coturn has its own drain (CLI `drain`: new Allocate requests get 403, the process exits when none is left) from this version. */
const OWN_DRAIN = [4, 6, 3] as const;

/**
 * A drain's turnserver side over the admin channel. On coturn 4.6.1 new allocations are refused
 * with `cc total-quota 1` (486 to every new Allocate while any allocation is open; SIGUSR1 would
 * kill 4.6.1); a quota lives only in the running turnserver, so it is set again after every
 * reconnect while refusing. From 4.6.3 coturn's own `drain` command is used.
 */
export class AdminDrainControl implements DrainControl {
  private refusing = false;
  private version: readonly number[] | null | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: AdminDrainControlOptions) {
    this.log = opts.logger.child({ component: 'drain' });
  }

  private get ownDrain(): boolean {
    if (this.version === undefined) {
      const text = this.opts.version() ?? turnserverVersion(this.opts.config.turnserver.bin);
      this.version = text === null ? null : parseVersion(text);
    }
    const v = this.version;
    if (!v) return false;
    for (let i = 0; i < 3; i++) if (v[i] !== OWN_DRAIN[i]) return v[i] > OWN_DRAIN[i];
    return true;
  }

  private readonly onStatus = (status: string): void => {
    if (status !== 'connected' || !this.refusing) return;
    this.apply().catch((err: Error) =>
      this.log.error(
        { event: 'drain-quota-failed', err: err.message },
        'could not refuse new allocations again after reconnecting',
      ),
    );
  };

  private async apply(): Promise<void> {
    const { admin } = this.opts;
    if (this.ownDrain) await admin.command('drain');
    else await admin.setTotalQuota(1);
  }

  async refuseNewAllocations(): Promise<void> {
    this.refusing = true;
    this.opts.admin.on('status', this.onStatus);
    await this.apply();
    this.log.info(
      { event: 'refusing-allocations', via: this.ownDrain ? 'drain' : 'total-quota' },
      'turnserver refuses new allocations',
    );
  }

  async resumeAllocations(): Promise<void> {
    this.refusing = false;
    this.opts.admin.off('status', this.onStatus);
    if (this.ownDrain) {
      this.log.warn(
        { event: 'drain-not-undone' },
        "coturn's own drain cannot be called off: it ends when its last allocation does",
      );
      return;
    }
    await this.opts.admin.setTotalQuota(configuredTotalQuota(this.opts.config));
  }

  async cancel(allocationId: string): Promise<void> {
    await this.opts.control.drainCancel([allocationId]);
  }
}

/** The total-quota turnserver runs with when not draining (from extraConfig; 0 = no limit). */
function configuredTotalQuota(config: Config): number {
  for (const line of config.turnserver.extraConfig) {
    const m = /^\s*total-quota\s*=\s*(\d+)\s*$/.exec(line);
    if (m) return Number(m[1]);
  }
  return 0;
}
