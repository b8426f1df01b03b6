import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

// Field names that may carry a secret. pino replaces them wherever they appear in a log object.
const REDACT = [
  'password',
  'secret',
  'credential',
  'apiKey',
  'key',
  'authorization',
  '*.password',
  '*.secret',
  '*.credential',
  '*.apiKey',
  '*.key',
  '*.authorization',
  'req.headers.authorization',
  'req.query.key',
];

export interface LoggerOptions {
  /** Human-readable lines instead of JSON; default: when the destination is stdout and a terminal. */
  pretty?: boolean;
}

/**
 * The root logger, secrets redacted. JSON lines (what pm2, CI and log files get), or, on a
 * terminal, pino-pretty's coloured lines with the component in front of the message.
 */
export function createLogger(
  level: string,
  destination: pino.DestinationStream | number = 1,
  options: LoggerOptions = {},
): Logger {
  const human = options.pretty ?? (destination === 1 && process.stdout.isTTY === true);
  const stream = human
    ? pretty({
        destination,
        sync: true,
        colorize: destination === 1 && process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,component',
        messageFormat: '{if component}{component}: {end}{msg}',
        singleLine: true,
      })
    : typeof destination === 'number'
      ? pino.destination({ fd: destination, sync: true })
      : destination;
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      // pino-pretty reads the numeric level; JSON readers get the label.
      formatters: human ? {} : { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
