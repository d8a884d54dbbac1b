'use strict';
// HTTP on the held port (SRV-*, PROTO-13/14): an incremental request-head parser with limits, the
// routing table, and responses. Every response closes the connection.

const { isUtf8 } = require('node:buffer');
const { checkHost, trimSpacesAndTabs } = require('./hostcheck');
const { validKey } = require('./ws');

const MAX_HEAD_BYTES = 8192;
const MAX_FIELDS = 32;
const HEAD_TIMEOUT_MS = 10000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REASONS = {
  101: 'Switching Protocols', 200: 'OK', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 421: 'Misdirected Request', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

const START = /^([^ ]+) ([^ ]+) HTTP\/(1\.[01])$/;
const validStart = (line) => {
  const start = START.exec(line);
  return start !== null && TOKEN.test(start[1]) ? start : null;
};

/**
 * One header line (read as latin1): `[lower-case name, value]`, the value with surrounding spaces and tabs
 * removed (only those) and decoded as UTF-8, or null if malformed (a value that is not UTF-8 included).
 */
function headerField(line) {
  const colon = line.indexOf(':');
  const name = line.slice(0, colon);
  const value = trimSpacesAndTabs(line.slice(colon + 1));
  if (colon < 1 || !TOKEN.test(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return null;
  const bytes = Buffer.from(value, 'latin1');
  if (!isUtf8(bytes)) return null;
  return [name.toLowerCase(), bytes.toString('utf8')];
}

/**
 * Parses a request head from the bytes received so far (protocol.md, "HTTP on the same port"):
 * `{ incomplete: true }`, `{ status: 400|431 }`, or `{ request: { method, target, path, version, headers, length } }`
 * with `headers` a Map of lower-cased names to their values in order and `length` the head's bytes. The head runs from the first byte
 * through the empty line (CRLF or bare LF); 8193 bytes or a 33rd field is 431 as soon as it is seen, a bad
 * request line 400 as soon as it is complete. Bytes after the head are never looked at.
 */
function parseHead(buffer) {
  const text = buffer.subarray(0, MAX_HEAD_BYTES + 1).toString('latin1');
  const lines = [];
  let start = null;
  for (let pos = 0, nl; (nl = text.indexOf('\n', pos)) >= 0; pos = nl + 1) {
    const line = text.slice(pos, text[nl - 1] === '\r' && nl > pos ? nl - 1 : nl);
    if (lines.length === 0) {
      start = validStart(line);
      if (start === null) return { status: 400 };
    } else if (line === '') {
      return nl + 1 > MAX_HEAD_BYTES ? { status: 431 } : request(start, lines.slice(1), nl + 1);
    } else if (lines.length > MAX_FIELDS) {
      return { status: 431 };
    }
    lines.push(line);
  }
  return buffer.length > MAX_HEAD_BYTES ? { status: 431 } : { incomplete: true };
}

function request(start, fieldLines, length) {
  const headers = new Map();
  for (const line of fieldLines) {
    const field = headerField(line);
    if (field === null) return { status: 400 };
    const [name, value] = field;
    headers.set(name, (headers.get(name) || []).concat([value]));
  }
  const [, method, target, version] = start;
  // The path is the target before the first `?` or `#`, compared byte for byte (no decoding, no folding).
  return { request: { method, target, path: target.split(/[?#]/)[0], version, headers, length } };
}

/** The comma-separated tokens of every `name` header, lower-cased (ASCII). */
function tokens(headers, name) {
  return (headers.get(name) || [])
    .join(',')
    .split(',')
    .map((t) => trimSpacesAndTabs(t).replace(/[A-Z]/g, (c) => c.toLowerCase()));
}

const HEALTH = new Set(['/health', '/healthz']);
const READY = new Set(['/ready', '/readyz', '/startup', '/startupz']);

/**
 * Routes a request: `{ upgrade: key }` for a WebSocket upgrade to accept, else `{ status, body? }`.
 * `gateway` supplies `settings` (host, allowedHosts), `shuttingDown`, `health()` and `originAllowed(origin)`.
 * The Host check (DOOR-7) comes first, then the path; `/` checks method, upgrade headers, version and key
 * (PROTO-15), shutdown, Origin (DOOR-3), in that order.
 */
function route(request, gateway) {
  const { method, path, version, headers } = request;
  const { host, allowedHosts } = gateway.settings;
  const misdirected = checkHost(headers.get('host') || [], version, host, allowedHosts);
  if (misdirected !== null) return { status: misdirected };
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
  if (!tokens(headers, 'upgrade').includes('websocket') || !tokens(headers, 'connection').includes('upgrade')) {
    return { status: 426 };
  }
  const key = trimSpacesAndTabs((headers.get('sec-websocket-key') || []).join(', '));
  if ((headers.get('sec-websocket-version') || []).join(', ') !== '13' || !validKey(key)) return { status: 400 };
  if (gateway.shuttingDown) return { status: 503, body: { ok: false, status: 'shutting down' } };
  const origin = headers.get('origin');
  if (origin && !gateway.originAllowed(origin.join(', '))) return { status: 403 };
  return { upgrade: key };
}

/** The bytes of a response that closes the connection; `head` leaves the body out (HEAD). */
function respond(status, body, { head = false, extra = {} } = {}) {
  const payload = body === undefined ? Buffer.from(`${status} ${REASONS[status]}`) : Buffer.from(JSON.stringify(body));
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
