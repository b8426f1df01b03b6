import { rateLimit } from 'express-rate-limit';
import type { RouteInstaller } from '../http/http-server.js';
import type { Logger } from '../log/logger.js';
import type { Credentials } from './credentials.js';

// The client id becomes part of the TURN username and of usage accounting keys: '%' crashes
// coturn 4.6.1 with redis-statsdb on, '/' and ':' break the topic and REST username parsing.
const CLIENT_ID = /^[A-Za-z0-9._-]{1,64}$/;

const error = (code: string, message: string) => ({ type: 'error', code, error: message });

/** GET /turncredential and POST /turncredential/rotate. */
export function credentialRoutes(credentials: Credentials, limitPerMinute: number, log: Logger): RouteInstaller {
  const limiter = rateLimit({
    windowMs: 60_000,
    limit: limitPerMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    handler: (_req, res) => void res.status(429).json(error('rate_limited', 'too many credential requests')),
  });
  return (router, { requireApiKey }) => {
    router.get('/turncredential', requireApiKey, limiter, (req, res) => {
      const user = req.query.user;
      if (user !== undefined && (typeof user !== 'string' || !CLIENT_ID.test(user))) {
        res.status(400).json(error('bad_user', 'user must be 1-64 characters of A-Z a-z 0-9 . _ -'));
        return;
      }
      const credential = credentials.issue((user as string | undefined) ?? null);
      if (!credential) {
        res.status(503).json(error('unavailable', 'no valid credential: see /health'));
        return;
      }
      res.set('Cache-Control', 'no-store').json(credential);
    });
    router.post('/turncredential/rotate', requireApiKey, async (_req, res) => {
      try {
        await credentials.rotateNow();
        log.warn({ event: 'rotated-on-request' }, 'credential rotated on request');
        res.json({ type: 'result', code: 'ok', rotated: true });
      } catch (err) {
        log.error({ event: 'rotate-failed', err: (err as Error).message }, 'rotation on request failed');
        res.status(502).json(error('rotate_failed', 'rotation failed: see the monitor log'));
      }
    });
  };
}
