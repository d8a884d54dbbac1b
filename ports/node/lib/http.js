'use strict';
// HTTP on the held port (SRV-*, PROTO-13/14): an incremental request-head parser with limits, the
// routing table, and responses. Every response closes the connection.

const MAX_HEAD_BYTES = 8192;
const MAX_FIELDS = 32;
const HEAD_TIMEOUT_MS = 10000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REASONS = {
  101: 'Switching Protocols', 200: 'OK', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

const START = /^([^ ]+) ([^ ]+) HTTP\/1\.[01]$/;
const validStart = (line) => {
  const start = START.exec(line);
  return start !== null && TOKEN.test(start[1]);
};

/** End of the head (index after the blank line) in `buffer`, or -1. Accepts CRLF and bare LF. */
function headEnd(buffer) {
  const text = buffer.toString('latin1');
  const match = /\r?\n\r?\n/.exec(text);
  return match ? match.index + match[0].length : -1;
}

/**
 * Parses a request head from the bytes received so far: `{ incomplete: true }`, `{ status: 400|431 }`,
 * or `{ request: { method, path, headers, rest } }` with header names lower-cased and `rest` the bytes
 * after the head. Every prefix of a valid head is incomplete, never refused.
 */
function parseHead(buffer) {
  const end = headEnd(buffer);
  if (end < 0) {
    const firstLine = /^([^\r\n]*)\r?\n/.exec(buffer.toString('latin1'));
    if (firstLine && !validStart(firstLine[1])) return { status: 400 };
    return buffer.length > MAX_HEAD_BYTES ? { status: 431 } : { incomplete: true };
  }
  if (end > MAX_HEAD_BYTES) return { status: 431 };
  const lines = buffer.subarray(0, end).toString('latin1').split(/\r?\n/).slice(0, -2);
  if (!validStart(lines[0])) return { status: 400 };
  const start = START.exec(lines[0]);
  if (lines.length - 1 > MAX_FIELDS) return { status: 431 };
  const headers = new Map();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (colon < 1 || !TOKEN.test(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return { status: 400 };
    const key = name.toLowerCase();
    headers.set(key, headers.has(key) ? `${headers.get(key)}, ${value}` : value);
  }
  const path = targetPath(start[2]);
  if (path === null) return { status: 400 };
  return { request: { method: start[1], path, headers, rest: buffer.subarray(end) } };
}

/** The path of a request target (origin or absolute form), without the query; null if neither. */
function targetPath(target) {
  if (target.startsWith('/')) return target.split('?')[0];
  const absolute = /^https?:\/\/[^/?#]*(\/[^?#]*)?/i.exec(target);
  return absolute ? absolute[1] || '/' : null;
}

const HEALTH = new Set(['/health', '/healthz']);
const READY = new Set(['/ready', '/readyz', '/startup', '/startupz']);

/**
 * Routes a request: `{ upgrade: true }` for a WebSocket upgrade to accept, else `{ status, body? }`.
 * `gateway` supplies `shuttingDown`, `health()` and `originAllowed(origin)`.
 */
function route(request, gateway) {
  const { method, path, headers } = request;
  const readOnly = method === 'GET' || method === 'HEAD';
  if (HEALTH.has(path)) return readOnly ? { status: 200, body: gateway.health() } : { status: 405 };
  if (READY.has(path)) {
    if (!readOnly) return { status: 405 };
    return gateway.shuttingDown
      ? { status: 503, body: { ok: false, status: 'shutting down' } }
      : { status: 200, body: { ok: true, status: 'ready' } };
  }
  if (path !== '/') return { status: 404 };
  if (method !== 'GET') return { status: 405 };
  const upgrade = (headers.get('upgrade') || '').toLowerCase().split(',').map((s) => s.trim());
  if (!upgrade.includes('websocket')) return { status: 426 };
  if (headers.has('origin') && !gateway.originAllowed(headers.get('origin'))) return { status: 403 };
  if (gateway.shuttingDown) return { status: 503, body: { ok: false, status: 'shutting down' } };
  const connection = (headers.get('connection') || '').toLowerCase().split(',').map((s) => s.trim());
  if (!connection.includes('upgrade') || headers.get('sec-websocket-version') !== '13') return { status: 400 };
  return { upgrade: true };
}

/** The bytes of a response that closes the connection; `head` leaves the body out (HEAD). */
function respond(status, body, { head = false, extra = {} } = {}) {
  const payload = body === undefined ? Buffer.from(`${status} ${REASONS[status]}\n`) : Buffer.from(JSON.stringify(body));
  const type = body === undefined ? 'text/plain; charset=utf-8' : 'application/json';
  const fields = { 'Content-Type': type, 'Content-Length': payload.length, Connection: 'close', ...extra };
  const lines = Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const top = Buffer.from(`HTTP/1.1 ${status} ${REASONS[status]}\r\n${lines}\r\n`, 'latin1');
  return head ? top : Buffer.concat([top, payload]);
}

function switchingProtocols(accept) {
  return Buffer.from(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    'latin1',
  );
}

module.exports = { parseHead, route, respond, switchingProtocols, HEAD_TIMEOUT_MS, MAX_HEAD_BYTES };
