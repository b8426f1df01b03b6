import type { RouteInstaller } from '../http-server.js';
import { TlsReloadError, type Tls } from '../../tls/tls.js';

const error = (code: string, message: string) => ({ type: 'error', code, error: message });

/**
 * GET /tls (the served certificate) and POST /tls/reload (check the files, SIGUSR2, answer once
 * the new certificate is served), both with the admin scope. For certbot's --deploy-hook.
 */
export function tlsRoutes(tls: Tls): RouteInstaller {
  return (router, { guard }) => {
    router.get('/tls', guard('admin'), (_req, res) => {
      if (!tls.enabled)
        return void res.status(404).json(error('tls_disabled', 'TLS is off: set turnserver.tls.cert and key'));
      res.json({ type: 'result', code: 'ok', ...tls.health() });
    });
    router.post('/tls/reload', guard('admin'), async (_req, res) => {
      if (!tls.enabled)
        return void res.status(404).json(error('tls_disabled', 'TLS is off: set turnserver.tls.cert and key'));
      try {
        const certificate = await tls.reload('api');
        res.json({ type: 'result', code: 'ok', reloaded: true, certificate });
      } catch (err) {
        // Reasons name a file and what is wrong with it, never its content.
        const result = err instanceof TlsReloadError ? err.result : 'failed';
        res.status(result === 'rejected' ? 422 : 502).json(error(`reload_${result}`, (err as Error).message));
      }
    });
  };
}
