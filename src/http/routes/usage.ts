import type { Request, Response } from 'express';
import type { Logger } from '../../log/logger.js';
import type { UsagePipeline } from '../../stats/pipeline.js';
import { liveRow } from '../../stats/query.js';
import { encodeCursor } from '../../stats/usage/usage-cursor.js';
import type { UsageQueries } from '../../stats/usage/usage-queries.js';
import type { RouteInstaller } from '../http-server.js';
import { BadParameter, parseUsageQuery } from './usage-params.js';

const CONTENT_TYPES = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  table: 'text/plain; charset=utf-8',
};

/** The URL of the next page: this request's path with only `cursor` (and limit, format) in its query. */
function nextUrl(req: Request, cursor: string): string {
  const q = new URLSearchParams({ cursor });
  for (const k of ['limit', 'format'] as const) if (typeof req.query[k] === 'string') q.set(k, req.query[k] as string);
  return `${req.baseUrl}${req.path}?${q.toString()}`;
}

/** Write text at the socket's pace (resolves once it can take more). */
function writeAtPace(res: Response, text: string): Promise<void> {
  if (res.write(text)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * GET /usage (stored records, a page at a time, read off the event loop) and GET /allocations
 * (open ones, live), both with the usage scope.
 */
export function usageRoutes(pipeline: UsagePipeline, queries: UsageQueries, log: Logger): RouteInstaller {
  return (router, { guard }) => {
    router.get('/usage', guard('usage'), async (req, res) => {
      let request;
      try {
        request = parseUsageQuery(req.query as Record<string, unknown>, Date.now());
      } catch (err) {
        if (!(err instanceof BadParameter)) throw err;
        res.status(400).json({ type: 'error', code: 'bad_request', parameter: err.parameter, error: err.message });
        return;
      }
      pipeline.flush(true); // include what changed in the last few milliseconds
      const gone = new AbortController();
      res.on('close', () => gone.abort());
      const { view, filter } = request;
      try {
        await queries.page(
          request,
          {
            head: (rows, next) => {
              const cursor = next === null ? null : encodeCursor({ view, filter, key: next });
              if (cursor !== null) res.set('Link', `<${nextUrl(req, cursor)}>; rel="next"`);
              res.status(200).type(CONTENT_TYPES[request.format]).set('X-Usage-Rows', String(rows));
              if (request.format === 'json') res.write(`{"cursor":${JSON.stringify(cursor)},`);
            },
            write: (text) => writeAtPace(res, text),
          },
          gone.signal,
        );
        res.end(request.format === 'json' ? '}\n' : undefined);
      } catch (err) {
        log.error({ event: 'usage-query-failed', err: (err as Error).message }, 'usage query failed');
        if (!res.headersSent)
          res
            .status(503)
            .json({ type: 'error', code: 'unavailable', error: 'usage query failed: see the monitor log' });
        else res.destroy();
      }
    });
    router.get('/allocations', guard('usage'), (_req, res) => {
      res.json(pipeline.model.openRecords().map(liveRow));
    });
  };
}
