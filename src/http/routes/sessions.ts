import type { Response } from 'express';
import type { RouteInstaller } from '../http-server.js';
import type { Logger } from '../../log/logger.js';
import type { SessionControl } from '../../control/session-control.js';
import { CLIENT_ID } from './credentials.js';

const error = (code: string, message: string) => ({ type: 'error', code, error: message });
const ALLOCATION_ID = /^\d{1,20}$/;
/** Seconds a client should wait when the admin channel cannot answer (turnserver restarts within ~3 s). */
const RETRY_AFTER_SEC = 3;

/** Answer a failed control call: 503 with Retry-After when the admin channel could not answer, else 502. */
function failed(res: Response, log: Logger, what: string, err: unknown, extra: Record<string, unknown> = {}): void {
  const e = err as Error & { code?: string };
  if (e.code === 'admin_unavailable') {
    res
      .set('Retry-After', String(RETRY_AFTER_SEC))
      .status(503)
      .json({ ...error('admin_unavailable', `coturn's admin channel did not answer: ${e.message}`), ...extra });
    return;
  }
  log.error({ event: 'control-failed', what, err: e.message }, `${what} failed`);
  res.status(502).json({ ...error('failed', `${what} failed: see the monitor log`), ...extra });
}

/**
 * Live control: GET /sessions, POST /sessions/:id/disconnect, POST|DELETE /clients/:id/revoke
 * (secret mode) and POST /turncredential/revoke (userdb mode): GET /sessions with the usage scope, the rest with control.
 */
export function sessionRoutes(control: SessionControl, mode: 'userdb' | 'secret', log: Logger): RouteInstaller {
  return (router, { guard }) => {
    router.get('/sessions', guard('usage'), async (req, res) => {
      const { user, clientId } = req.query;
      if (user !== undefined && (typeof user !== 'string' || user === '' || /[\s\r\n]/.test(user))) {
        res.status(400).json(error('bad_request', 'user must be one username'));
        return;
      }
      if (clientId !== undefined && (typeof clientId !== 'string' || !CLIENT_ID.test(clientId))) {
        res.status(400).json(error('bad_client', 'clientId must be 1-64 characters of A-Z a-z 0-9 . _ -'));
        return;
      }
      try {
        res.json(await control.list({ user, clientId }));
      } catch (err) {
        failed(res, log, 'listing sessions', err);
      }
    });

    router.post('/sessions/:id/disconnect', guard('control'), async (req, res) => {
      const id = req.params.id as string;
      try {
        if (!ALLOCATION_ID.test(id) || !(await control.disconnect(id))) {
          res.status(404).json(error('not_found', 'no live allocation with that id'));
          return;
        }
        res.json({ type: 'result', code: 'ok', allocationId: id, disconnected: true });
      } catch (err) {
        failed(res, log, 'disconnect', err);
      }
    });

    const clientRoute = '/clients/:clientId/revoke';
    const checkClient = (clientId: string, res: Response): boolean => {
      if (mode !== 'secret') {
        res
          .status(409)
          .json(
            error('wrong_mode', 'revoking a client needs credentials.mode "secret"; use POST /turncredential/revoke'),
          );
        return false;
      }
      if (!CLIENT_ID.test(clientId)) {
        res.status(400).json(error('bad_client', 'clientId must be 1-64 characters of A-Z a-z 0-9 . _ -'));
        return false;
      }
      return true;
    };
    router.post(clientRoute, guard('control'), async (req, res) => {
      const clientId = req.params.clientId as string;
      if (!checkClient(clientId, res)) return;
      try {
        const r = await control.revokeClient(clientId);
        res.json({ type: 'result', code: 'ok', clientId, revoked: true, ...r });
      } catch (err) {
        // The deny list was written before the admin channel was asked: it holds either way.
        failed(res, log, 'revoke', err, { clientId, revoked: true, pending: true });
      }
    });
    router.delete(clientRoute, guard('control'), async (req, res) => {
      const clientId = req.params.clientId as string;
      if (!checkClient(clientId, res)) return;
      try {
        const lifted = await control.liftRevoke(clientId);
        res
          .status(lifted ? 200 : 404)
          .json(
            lifted
              ? { type: 'result', code: 'ok', clientId, revoked: false }
              : error('not_found', 'that client is not revoked'),
          );
      } catch (err) {
        failed(res, log, 'lifting a revoke', err);
      }
    });

    router.post('/turncredential/revoke', guard('control'), async (_req, res) => {
      if (mode !== 'userdb') {
        res
          .status(409)
          .json(
            error(
              'wrong_mode',
              'revoking the shared credential needs credentials.mode "userdb"; use POST /clients/{clientId}/revoke',
            ),
          );
        return;
      }
      try {
        const r = await control.revokeCredential();
        res.json({ type: 'result', code: 'ok', revoked: true, cancelled: r.cancelled, users: r.users });
      } catch (err) {
        failed(res, log, 'credential revoke', err);
      }
    });
  };
}
