import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Poll until the predicate holds (state outside our process: /proc, files, a server's answer).
 * Each attempt is bounded by the time left, so a predicate stuck on a dead server still times
 * out; the error names what was awaited and the last attempt's failure.
 */
export async function waitUntil(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  pollMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) {
      const why = lastError instanceof Error ? ` (last attempt: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), left)));
    const attempt = Promise.resolve()
      .then(predicate)
      .catch((err: unknown) => {
        lastError = err;
        return false;
      });
    const ok = await Promise.race([attempt, expired]);
    clearTimeout(timer);
    if (ok) return;
    await sleep(pollMs);
  }
}
