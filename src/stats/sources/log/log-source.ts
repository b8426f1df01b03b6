import type { EventEmitter } from 'node:events';
import type { UsageSink } from '../../events.js';

/** A sink that also records how far the log was read (committed with the usage it produced). */
export interface PositionedSink extends UsageSink {
  notePosition(file: string, offset: number): void;
}
import { parseLogLine } from './log-parser.js';

/**
 * Usage events from turnserver's own log (with `verbose` on), fed by the supervisor's 'line'
 * events. Needs no Redis at all, so it is immune to coturn 4.6.1's redis-statsdb crash on
 * usernames containing '%'.
 */
export class LogSource {
  private readonly onLine = (line: string, position?: { file: string; offset: number }) => {
    const event = parseLogLine(line, this.now());
    if (event) this.sink.ingest(event);
    if (position) this.sink.notePosition(position.file, position.offset);
  };

  constructor(
    private readonly supervisor: EventEmitter,
    private readonly sink: PositionedSink,
    private readonly now: () => number,
  ) {}

  /** turnserver logs sessions' usage only in verbose mode. */
  turnConfLines(): string[] {
    return ['verbose'];
  }

  start(): void {
    this.supervisor.on('line', this.onLine);
  }

  stop(): void {
    this.supervisor.off('line', this.onLine);
  }
}
