import type { RouteInstaller } from '../http-server.js';
import type { Logger } from '../../log/logger.js';
import type { Quotas } from '../../quotas/quotas.js';
import { CLIENT_ID } from './credentials.js';

const error = (code: string, message: string) => ({ type: 'error', code, error: message });

/** GET /clients/{id}/quota: the client's usage, quota and state in the current period (usage scope). */
export function quotaRoutes(quotas: Quotas, log: Logger): RouteInstaller {
  return (router, { guard }) => {
    router.get('/clients/:clientId/quota', guard('usage'), async (req, res) => {
      const clientId = req.params.clientId as string;
      if (!CLIENT_ID.test(clientId)) {
        res.status(400).json(error('bad_client', 'clientId must be 1-64 characters of A-Z a-z 0-9 . _ -'));
        return;
      }
      if (!quotas.enabled) {
        res
          .status(409)
          .json(
            error('quotas_off', 'quotas are off (secret mode with quotas or export.postgres.url set turns them on)'),
          );
        return;
      }
      try {
        res.json(await quotas.view(clientId));
      } catch (err) {
        log.debug({ event: 'quota-view-failed', err: (err as Error).message }, 'quota lookup failed');
        res.status(503).set('Retry-After', '5').json(error('unavailable', 'usage cannot be read now: see /health'));
      }
    });
  };
}
