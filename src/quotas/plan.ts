/** A client at or above warnAt × its quota in the current period (what the usage query returns). */
export interface OverUsage {
  realm: string;
  clientId: string;
  used: number;
  quota: number;
}

/** What the enforcer has done for a client in a period (turn_monitor.quota_state, or quota-state.json). */
export interface StateRow {
  realm: string;
  clientId: string;
  periodStart: number;
  warned: boolean;
  exceeded: boolean;
  used: number | null;
  quota: number | null;
}

export type QuotaAction =
  | { kind: 'warn' | 'exceed'; realm: string; clientId: string; used: number; quota: number }
  | {
      kind: 'lift';
      realm: string;
      clientId: string;
      /** raised: its quota now lies above its usage (or it has none); period: a new period began. */
      why: 'raised' | 'period';
      used: number | null;
      quota: number | null;
    };

export interface Plan {
  actions: QuotaAction[];
  save: StateRow[];
  drop: { realm: string; clientId: string }[];
}

const keyOf = (r: { realm: string; clientId: string }) => `${r.realm}\n${r.clientId}`;

/**
 * One check's decisions, from the clients at or above their warning threshold now and the state
 * kept so far (pure; unit-tested). Per client and period: `warn` once, `exceed` once (and again
 * only after a lift), `lift` when the quota was raised above its usage or the period ended. The
 * actions come in the order they are to be carried out (a warning before its exceed).
 */
export function planCheck(over: OverUsage[], states: StateRow[], periodStart: number): Plan {
  const plan: Plan = { actions: [], save: [], drop: [] };
  const known = new Map(states.map((s) => [keyOf(s), s]));
  const seen = new Set<string>();
  for (const u of over) {
    const k = keyOf(u);
    seen.add(k);
    const old = known.get(k);
    const s: StateRow =
      old && old.periodStart === periodStart
        ? { ...old }
        : {
            realm: u.realm,
            clientId: u.clientId,
            periodStart,
            warned: false,
            exceeded: false,
            used: null,
            quota: null,
          };
    // An entry of an earlier period still exceeded: lifted first (its deny entry ends with that period).
    if (old && old.periodStart !== periodStart && old.exceeded) plan.actions.push(lift(old, 'period'));
    const base = { realm: u.realm, clientId: u.clientId, used: u.used, quota: u.quota };
    if (!s.warned) {
      plan.actions.push({ kind: 'warn', ...base });
      s.warned = true;
    }
    if (u.used >= u.quota && !s.exceeded) {
      plan.actions.push({ kind: 'exceed', ...base });
      s.exceeded = true;
    } else if (u.used < u.quota && s.exceeded) {
      plan.actions.push({ kind: 'lift', ...base, why: 'raised' });
      s.exceeded = false;
    }
    if (!old || s.warned !== old.warned || s.exceeded !== old.exceeded || s.periodStart !== old.periodStart)
      plan.save.push({ ...s, used: u.used, quota: u.quota });
  }
  for (const s of states) {
    const k = keyOf(s);
    if (seen.has(k)) continue;
    if (s.periodStart !== periodStart) {
      if (s.exceeded) plan.actions.push(lift(s, 'period'));
      plan.drop.push({ realm: s.realm, clientId: s.clientId });
    } else if (s.exceeded) {
      // Below its warning threshold now (a raised quota, or none): lifted; the warning stays sent.
      plan.actions.push(lift(s, 'raised'));
      plan.save.push({ ...s, exceeded: false });
    }
  }
  return plan;
}

function lift(s: StateRow, why: 'raised' | 'period'): QuotaAction {
  return { kind: 'lift', realm: s.realm, clientId: s.clientId, why, used: s.used, quota: s.quota };
}

/**
 * The kept state with the deny list's quota entries folded in: a client denied for its quota
 * whose state does not say so (an enforcer killed between writing the denial and saving its
 * state) counts as exceeded in this period, so the check lifts it when it is under its quota
 * again instead of leaving it denied until the period ends. Matched by client id; a client
 * without any state row takes `realm`.
 */
export function withQuotaDenials(
  states: StateRow[],
  deniedForQuota: readonly string[],
  realm: string,
  periodStart: number,
): StateRow[] {
  const out = [...states];
  for (const clientId of deniedForQuota) {
    const i = out.findIndex((s) => s.clientId === clientId);
    if (i >= 0 && out[i].exceeded) continue;
    const base = i >= 0 ? out[i] : { realm, clientId, used: null, quota: null };
    const row: StateRow = { ...base, periodStart, warned: true, exceeded: true };
    if (i >= 0) out[i] = row;
    else out.push(row);
  }
  return out;
}
