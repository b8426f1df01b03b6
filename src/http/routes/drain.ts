import express from 'express';
import type { RouteInstaller } from '../http-server.js';
import type { Drain, DrainThen } from '../../drain/drain.js';

/**
 * POST /drain {"timeoutSec": N, "then": "stop"|"restart"} (202 with the drain's status; 409 when
 * one runs) and POST /drain/cancel (200 {cancelled}), both with the admin scope.
 */
export function drainRoutes(drain: Drain, defaultTimeoutSec: number): RouteInstaller {
  return (router, { guard }) => {
    router.post('/drain', guard('admin'), express.json({ limit: '1kb' }), (req, res) => {
      const body = (req.body ?? {}) as { timeoutSec?: unknown; then?: unknown };
      const timeoutSec = body.timeoutSec ?? defaultTimeoutSec;
      const then = body.then ?? 'stop';
      if (
        typeof timeoutSec !== 'number' ||
        !(timeoutSec >= 0 && timeoutSec <= 3600) ||
        (then !== 'stop' && then !== 'restart')
      ) {
        res.status(400).json({
          type: 'error',
          code: 'bad_request',
          error: 'timeoutSec must be 0-3600 and then "stop" or "restart"',
        });
        return;
      }
      if (drain.draining) {
        res
          .status(409)
          .json({ type: 'error', code: 'draining', error: 'a drain is already running', draining: drain.status() });
        return;
      }
      void drain.run(timeoutSec, then as DrainThen).catch(() => undefined);
      res.status(202).json({ type: 'result', code: 'ok', draining: drain.status() });
    });
    router.post('/drain/cancel', guard('admin'), async (_req, res) => {
      res.json({ type: 'result', code: 'ok', cancelled: await drain.cancel() });
    });
  };
}
