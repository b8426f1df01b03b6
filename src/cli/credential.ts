import type { Command } from 'commander';

/** `turn-monitor credential`: not built yet. */
export function registerCredential(_program: Command): void {}
