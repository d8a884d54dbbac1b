'use strict';
// The gateway protocol (protocol.md, PROTO-*), free of I/O: frames in, replies and a close decision out.
// A Session is one WebSocket connection's handshake state; the server carries out what it returns.
const crypto = require('node:crypto');

const PROTOCOL = 4;
const MAX_PAYLOAD = 1048576;
const MAX_PREAUTH_PAYLOAD = 65536;
const METHODS = ['health', 'status', 'system-presence', 'config.get'];
const EVENTS = ['connect.challenge', 'tick', 'shutdown'];

const CLOSE = {
  firstRequest: [1008, 'invalid handshake: first request must be connect'],
  badParams: [1008, 'invalid connect params'],
  unauthorized: [1008, 'unauthorized'],
  handshakeTimeout: [1008, 'handshake timeout'],
  mismatch: [1002, 'protocol mismatch'],
  tooLarge: [1009, 'frame too large'],
  restart: [1012, 'service restart'],
};

/** Compares a presented token with the gateway's in constant time (DOOR-1). */
function tokenMatches(presented, token) {
  const digest = (text) => crypto.createHash('sha256').update(String(text)).digest();
  const same = crypto.timingSafeEqual(digest(presented), digest(token));
  return same && Buffer.byteLength(String(presented)) === Buffer.byteLength(token);
}

const isString = (v) => typeof v === 'string';
const isNonEmpty = (v) => isString(v) && v !== '';
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * JSON text with every number written with a fraction or an exponent (`4.0`, `4e0`), and `-0`, replaced by `null`,
 * token for token, so that JSON.parse keeps only the integers written as integers (connect's protocol
 * fields, protocol.md: `4`, not `4.0`). Text that is not valid JSON stays invalid.
 */
function integersOnly(text) {
  return text.replace(/"(?:[^"\\]|\\.)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/g, (token) =>
    token[0] === '"' || (!/[.eE]/.test(token) && token !== '-0') ? token : 'null',
  );
}

/** A request frame `{type:"req", id, method, params?}`, or `{error, id}` naming why it is not one. */
function parseFrame(data) {
  let frame;
  try {
    frame = JSON.parse(integersOnly(data.toString('utf8')));
  } catch {
    return { error: 'frame is not JSON', id: null };
  }
  if (!isObject(frame)) return { error: 'frame is not an object', id: null };
  const id = isNonEmpty(frame.id) ? frame.id : null;
  if (frame.type !== 'req') return { error: 'frame is not a request ("type":"req")', id };
  if (id === null) return { error: 'request lacks a non-empty string id', id };
  if (!isNonEmpty(frame.method)) return { error: 'request lacks a non-empty string method', id };
  return { request: { id, method: frame.method, params: frame.params } };
}

const isProtocol = (v) => Number.isInteger(v) && v >= 0 && v <= 4294967295;
const absent = (v) => v === undefined || v === null;
const CLIENT_FIELDS = ['id', 'version', 'platform', 'mode'];
const CLIENT_OPTIONAL = ['deviceFamily', 'instanceId', 'displayName'];

/**
 * Why connect's params are not well-formed (protocol.md, Handshake step 2, the table of types), or null.
 * Absent or null optional fields are fine; `scopes: null` is not; `auth` absent, null or without a string
 * token is a missing token (decided later), a non-string token malformed.
 */
function connectProblem(p) {
  if (!isObject(p)) return 'params must be an object';
  for (const field of ['minProtocol', 'maxProtocol']) {
    if (!isProtocol(p[field])) return `${field} must be an integer 0-4294967295`;
  }
  const c = p.client;
  if (!isObject(c)) return 'client must be an object';
  for (const field of CLIENT_FIELDS) if (!isString(c[field])) return `client.${field} must be a string`;
  for (const field of CLIENT_OPTIONAL) if (!absent(c[field]) && !isString(c[field])) return `client.${field} must be a string`;
  if (!absent(p.role) && !isString(p.role)) return 'role must be a string';
  if (p.scopes !== undefined && !(Array.isArray(p.scopes) && p.scopes.every(isString))) return 'scopes must be an array of strings';
  if (!absent(p.auth) && !isObject(p.auth)) return 'auth must be an object';
  if (isObject(p.auth) && !absent(p.auth.token) && !isString(p.auth.token)) return 'auth.token must be a string';
  return null;
}

/** The client as kept and shown by system-presence: the seven fields, optional ones only when strings. */
function keptClient(c) {
  const kept = {};
  for (const field of CLIENT_FIELDS) kept[field] = c[field];
  for (const field of CLIENT_OPTIONAL) if (isString(c[field])) kept[field] = c[field];
  return kept;
}

const response = (id, payload) => ({ type: 'res', id, ok: true, payload });
const failure = (id, code, message) => ({ type: 'res', id, ok: false, error: { code, message } });

/**
 * One connection's protocol state. `gateway` supplies `token`, `info()` (host, port, pid, version,
 * tickIntervalMs), and the method payloads `healthPayload()`, `status()`, `presence()`, `config()`. Every method returns
 * `{ send: [frames], close?: [code, reason], authenticated?: true, authFailed?: true }`.
 */
class Session {
  constructor(gateway) {
    this.gateway = gateway;
    this.connId = crypto.randomUUID();
    this.authenticated = false;
    this.closed = false;
    this.seq = 0;
    this.client = null;
  }

  /** Frame limit for the next frame (PROTO-7). */
  limit() {
    return this.authenticated ? MAX_PAYLOAD : MAX_PREAUTH_PAYLOAD;
  }

  open() {
    const challenge = { type: 'event', event: 'connect.challenge', payload: { nonce: crypto.randomUUID(), ts: Date.now() } };
    return { send: [challenge] };
  }

  close(reply, [code, reason]) {
    this.closed = true;
    return { send: reply ? [reply] : [], close: [code, reason] };
  }

  onMessage(data) {
    if (this.closed) return { send: [] };
    const parsed = parseFrame(data);
    if (!this.authenticated) return this.handshake(parsed);
    if (parsed.error) return { send: [failure(parsed.id, 'INVALID_REQUEST', parsed.error)] };
    return { send: [this.serve(parsed.request)] };
  }

  handshake(parsed) {
    if (parsed.error) return this.close(failure(parsed.id, 'INVALID_REQUEST', parsed.error), CLOSE.firstRequest);
    const { id, method, params } = parsed.request;
    if (method !== 'connect') {
      return this.close(failure(id, 'INVALID_REQUEST', 'first request must be connect'), CLOSE.firstRequest);
    }
    const problem = connectProblem(params);
    if (problem !== null) return this.close(failure(id, 'INVALID_REQUEST', `invalid connect params: ${problem}`), CLOSE.badParams);
    if (params.minProtocol > PROTOCOL || params.maxProtocol < PROTOCOL) {
      const message = `protocol ${PROTOCOL} is not in ${params.minProtocol}..=${params.maxProtocol}`;
      return this.close(failure(id, 'PROTOCOL_MISMATCH', message), CLOSE.mismatch);
    }
    const token = isObject(params.auth) ? params.auth.token : undefined;
    if (!token) return this.refuse(failure(id, 'AUTH_TOKEN_MISSING', 'connect needs auth.token'));
    if (!tokenMatches(token, this.gateway.token)) return this.refuse(failure(id, 'AUTH_TOKEN_MISMATCH', 'auth.token is not the gateway token'));
    return this.welcome(id, params);
  }

  /** A failed authentication: close 1008, and counted by the throttle (DOOR-8). */
  refuse(reply) {
    return { ...this.close(reply, CLOSE.unauthorized), authFailed: true };
  }

  welcome(id, params) {
    this.authenticated = true;
    const role = isString(params.role) ? params.role : 'operator';
    this.client = { client: keptClient(params.client), role, scopes: params.scopes || [], connectedAtMs: Date.now() };
    const info = this.gateway.info();
    const hello = {
      type: 'hello-ok',
      protocol: PROTOCOL,
      server: { version: info.version, connId: this.connId, host: info.host, pid: info.pid },
      features: { methods: METHODS, events: EVENTS },
      auth: { role: this.client.role, scopes: this.client.scopes },
      policy: { maxPayload: MAX_PAYLOAD, maxBufferedBytes: 2 * MAX_PAYLOAD, tickIntervalMs: info.tickIntervalMs },
    };
    return { send: [response(id, hello)], authenticated: true };
  }

  serve({ id, method }) {
    const g = this.gateway;
    if (method === 'connect') return failure(id, 'INVALID_REQUEST', 'already connected');
    if (method === 'health') return response(id, g.healthPayload());
    if (method === 'status') return response(id, g.status());
    if (method === 'system-presence') return response(id, g.presence());
    if (method === 'config.get') return response(id, g.config());
    return failure(id, 'METHOD_NOT_FOUND', `unknown method: ${[...method].slice(0, 64).join('')}`);
  }

  event(name, payload) {
    this.seq += 1;
    return { type: 'event', event: name, payload, seq: this.seq };
  }

  tick() {
    if (!this.authenticated || this.closed) return { send: [] };
    return { send: [this.event('tick', { ts: Date.now() })] };
  }

  handshakeTimeout() {
    if (this.authenticated || this.closed) return { send: [] };
    return this.close(null, CLOSE.handshakeTimeout);
  }

  shutdown() {
    if (this.closed) return { send: [] };
    const notice = this.authenticated ? this.event('shutdown', { reason: 'gateway stopping' }) : null;
    return this.close(notice, CLOSE.restart);
  }

  tooLarge() {
    return this.close(null, CLOSE.tooLarge);
  }
}

module.exports = { Session, tokenMatches, PROTOCOL, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD, CLOSE };
