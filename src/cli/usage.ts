import type { Command } from 'commander';

/** `turn-monitor usage`: not built yet. */
export function registerUsage(_program: Command): void {}
