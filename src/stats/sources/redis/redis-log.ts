/** A level of ours for one redis-server log line. */
export type RedisLineLevel = 'warn' | 'info' | 'debug';

// redis-server log lines: "pid:role dd Mon yyyy hh:mm:ss.mmm <mark> text", the mark being the
// line's level: '#' warning, '*' notice, '-' verbose, '.' debug.
const REDIS_LINE = /^\d+:[A-Z] \d{2} \w{3} \d{4} [\d:.]+ ([*#.-]) (.*)$/;

// Lifecycle lines redis-server writes with the warning mark so they show at every verbosity:
// they are news, not trouble.
const LIFECYCLE = [
  /Redis is starting/,
  /^Redis version=/,
  /^Configuration loaded$/,
  /^Server initialized$/,
  /^Received SIG\w+ scheduling shutdown/,
  /^User requested shutdown/,
  /^Redis is now ready to exit/,
];

/** The level and text of a redis-server line: from redis's own mark ('#' warn, '*' info, '-' and '.' debug). */
export function redisLineLevel(line: string): { level: RedisLineLevel; text: string } {
  const m = REDIS_LINE.exec(line);
  if (!m) return { level: 'debug', text: line };
  const [, mark, text] = m;
  if (mark === '#') return { level: LIFECYCLE.some((re) => re.test(text)) ? 'info' : 'warn', text };
  return { level: mark === '*' ? 'info' : 'debug', text };
}
