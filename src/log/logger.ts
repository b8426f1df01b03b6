import { pino, type Logger } from 'pino';

export type { Logger };

// Field names that may carry a secret. pino replaces them wherever they appear in a log object.
const REDACT = [
  'password', 'secret', 'credential', 'apiKey', 'key', 'authorization',
  '*.password', '*.secret', '*.credential', '*.apiKey', '*.key', '*.authorization',
  'req.headers.authorization', 'req.query.key',
];

/** The root logger: JSON lines on stdout (pm2 collects them), secrets redacted. */
export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}
