import type { HostPayload } from './payload.js';

/** One published TURN host as the selector sees it. */
export interface TurnHost extends HostPayload {
  /** The node name (`<externalIp or hostname>:<port>` by default). */
  name: string;
}

/** Most free first; ties by name so the order is stable. */
export function sortByFree<T extends TurnHost>(hosts: readonly T[]): T[] {
  return [...hosts].sort((a, b) => b.freeTraffic - a.freeTraffic || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Round-robin among serving hosts with at least `minFreeMbps` free: the first (by name) after the
 * last one picked, wrapping around, so hosts joining or leaving do not upset the rotation. When
 * none qualifies: the most free serving host. null when none serves.
 */
export function pickHost<T extends TurnHost>(
  hosts: readonly T[],
  minFreeMbps: number,
  lastPicked: string | null,
): { host: T; roundRobin: boolean } | null {
  const serving = hosts.filter((h) => h.serving);
  if (serving.length === 0) return null;
  const qualifying = serving
    .filter((h) => h.freeTraffic >= minFreeMbps)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (qualifying.length === 0) return { host: sortByFree(serving)[0], roundRobin: false };
  const next = (lastPicked !== null && qualifying.find((h) => h.name > lastPicked)) || qualifying[0];
  return { host: next, roundRobin: true };
}
