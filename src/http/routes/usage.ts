import type { RouteInstaller } from '../http-server.js';
import { formatUsage, liveRow, parseFilter, queryUsage, type UsageView } from '../../stats/query.js';
import type { UsagePipeline } from '../../stats/pipeline.js';

const VIEWS = new Set(['allocation', 'session', 'user', 'unattributed']);
const FORMATS = new Set(['json', 'csv', 'table']);

/** GET /usage (stored records) and GET /allocations (open ones, live), both behind the API key. */
export function usageRoutes(pipeline: UsagePipeline): RouteInstaller {
  return (router, { requireApiKey }) => {
    router.get('/usage', requireApiKey, (req, res) => {
      const by = (req.query.by as string | undefined) ?? 'allocation';
      const format = (req.query.format as string | undefined) ?? 'json';
      let filter;
      try {
        if (!VIEWS.has(by)) throw new Error('by must be allocation, session, user or unattributed');
        if (!FORMATS.has(format)) throw new Error('format must be json, csv or table');
        filter = parseFilter(req.query);
      } catch (err) {
        res.status(400).json({ type: 'error', code: 'bad_request', error: (err as Error).message });
        return;
      }
      pipeline.flush(true); // include what changed in the last few milliseconds
      const rows = pipeline.store ? queryUsage(pipeline.store.db, by as UsageView, filter) : [];
      if (format === 'json') res.json(rows);
      else res.type(format === 'csv' ? 'text/csv' : 'text/plain').send(formatUsage(rows, format as 'csv' | 'table'));
    });
    router.get('/allocations', requireApiKey, (_req, res) => {
      res.json(pipeline.model.openRecords().map(liveRow));
    });
  };
}
