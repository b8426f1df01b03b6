/** What every subsystem exposes to the composition root. */
export interface Subsystem {
  readonly name: string;
  /** Resolves once the subsystem is ready; rejects on a start-up failure (which is not retried). */
  start(): Promise<void>;
  /** Idempotent; resolves once everything the subsystem started has stopped. */
  stop(): Promise<void>;
  /** A JSON-able view for GET /health. */
  health(): SubsystemHealth;
  /**
   * Handover (a monitor restart that is not a host stop): stop our own parts like stop(), but
   * leave every child process serving and withdraw nothing, for the next monitor to adopt.
   * Subsystems without one are stopped.
   */
  release?(): Promise<void>;
  /** Forced exit (second signal): SIGKILL any child process at once, synchronously. */
  forceKill?(): void;
}

export interface SubsystemHealth {
  /** 'ok' serving, 'degraded' serving with a problem, 'down' not serving, 'disabled' turned off by config. */
  status: 'ok' | 'degraded' | 'down' | 'disabled';
  [detail: string]: unknown;
}

/** A start-up failure: reported and exited on, never restart-looped. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

/** Something that contributes lines to the rendered turnserver.conf (credentials, stats). */
export interface TurnConfContributor {
  /**
   * Its lines of the conf. `spawn`: for a turnserver about to start (per-start secrets are made
   * anew); `compare`: to tell whether a running turnserver's conf is still what we would render.
   */
  turnConfLines(purpose?: 'spawn' | 'compare'): string[];
}
