import type { Command } from 'commander';

/** `turn-monitor servers`: not built yet. */
export function registerServers(_program: Command): void {}
