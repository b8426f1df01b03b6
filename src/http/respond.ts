import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * A JSON answer on a bare node:http response: the bytes express's res.json sends (content-type
 * with charset, content-length; no ETag, pointless on these answers), in one writeHead.
 * `headers` (extra headers) is completed in place: pass a fresh object.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** sendJson for a body already serialised. */
export function sendJsonText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: OutgoingHttpHeaders = {},
): void {
  headers['Content-Type'] = 'application/json; charset=utf-8';
  headers['Content-Length'] = Buffer.byteLength(text);
  res.writeHead(status, headers).end(text);
}
