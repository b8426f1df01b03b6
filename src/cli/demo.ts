import type { Command } from 'commander';

/** `turn-monitor demo`: not built yet. */
export function registerDemo(_program: Command): void {}
