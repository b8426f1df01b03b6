import type { OverUsage, StateRow } from './plan.js';
import type { QuotaPeriod } from './period.js';

/** One check's inputs: the period and the rules that make a quota. */
export interface CheckInput {
  period: QuotaPeriod;
  start: number;
  end: number;
  warnAt: number;
  defaultBytes: number | null;
}

/** A bad override (skipped, reported in /health). */
export interface BadRow {
  realm: string;
  clientId: string;
  why: string;
}

/** Where usage, quotas and the enforcer's state come from: PostgreSQL (a fleet) or this host. */
export interface QuotaStore {
  readonly kind: 'fleet' | 'local';
  /** Whether this monitor is the enforcer now (a fleet elects one; a single host always is). */
  lead(): Promise<boolean>;
  /** Clients at or above warnAt × their quota in the period. */
  over(input: CheckInput): Promise<OverUsage[]>;
  states(): Promise<StateRow[]>;
  save(rows: StateRow[], drop: { realm: string; clientId: string }[]): Promise<void>;
  badRows(): Promise<BadRow[]>;
  /** One client's usage and quota in the period (GET /clients/{id}/quota). */
  usageOf(realm: string, clientId: string, input: CheckInput): Promise<{ used: number; quota: number | null }>;
  /** Forget the connection (after a failure); the next call connects again. */
  reset(): void;
  close(): Promise<void>;
}

export const CLIENT_ID_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
