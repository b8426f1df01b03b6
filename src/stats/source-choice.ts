import { spawnSync } from 'node:child_process';

export type ConcreteSource = 'redis' | 'log' | 'both';

export interface SourceChoice {
  source: ConcreteSource;
  /** Why: configured, or the version seen (and what it means). */
  reason: string;
  /** turnserver's version as it printed it, or null when it could not be read. */
  version: string | null;
}

/** coturn fixed the '%'-username crash of redis-statsdb (GHSA-4g7c-p5wg-j4hp) in this version. */
export const PERCENT_FIX = [4, 13, 0] as const;

/** "4.6.1" (from `turnserver --version`) or a banner "Version Coturn-4.6.1 'Gorst'" → [4, 6, 1]. */
export function parseVersion(text: string): [number, number, number] | null {
  const m = /(?:Coturn-)?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function atLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] > min[i];
  return true;
}

/**
 * The usage source to run with. `auto` is `log` when turnserver is older than 4.13.0 (with
 * redis-statsdb on, any client can crash it with a '%' in its username) and `both` from 4.13.0;
 * an unreadable version counts as old: the safe side.
 */
export function chooseSource(configured: 'auto' | ConcreteSource, versionText: string | null): SourceChoice {
  const version = versionText === null ? null : parseVersion(versionText);
  const shown = version ? version.join('.') : null;
  if (configured !== 'auto') return { source: configured, reason: 'configured', version: shown };
  if (!version)
    return {
      source: 'log',
      reason: 'turnserver version unknown: assumed below 4.13.0 (redis-statsdb crash on a % username)',
      version: null,
    };
  return atLeast(version, PERCENT_FIX)
    ? { source: 'both', reason: `turnserver ${shown} >= 4.13.0: redis-statsdb is safe`, version: shown }
    : {
        source: 'log',
        reason: `turnserver ${shown} < 4.13.0: redis-statsdb crashes on a % username (GHSA-4g7c-p5wg-j4hp)`,
        version: shown,
      };
}

/**
 * `turnserver --version` prints the bare version ("4.6.1") and exits: read before the conf is
 * rendered, since the source decides what goes into it. Null when it cannot be run.
 */
export function turnserverVersion(bin: string): string | null {
  // SIGKILL at the timeout: a binary that ignores SIGTERM would otherwise block spawnSync for good.
  const r = spawnSync(bin, ['--version'], {
    encoding: 'utf8',
    timeout: 3000,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error || r.status !== 0) return null;
  const text = `${r.stdout}${r.stderr}`.trim();
  return parseVersion(text) ? text : null;
}
