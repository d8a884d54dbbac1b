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
const optional = (v, check) => v === undefined || check(v);

/** A request frame `{type:"req", id, method, params?}`, or `{error, id}` naming why it is not one. */
function parseFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data.toString('utf8'));
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

/** Connect params well-formed (protocol.md, Handshake step 2)? */
function validConnect(p) {
  if (!isObject(p) || !Number.isInteger(p.minProtocol) || !Number.isInteger(p.maxProtocol)) return false;
  const c = p.client;
  if (!isObject(c) || ![c.id, c.version, c.platform, c.mode].every(isString)) return false;
  if (![c.deviceFamily, c.instanceId, c.displayName].every((v) => optional(v, isString))) return false;
  if (!optional(p.role, isString) || !optional(p.scopes, (s) => Array.isArray(s) && s.every(isString))) return false;
  return optional(p.auth, isObject) && optional(p.auth && p.auth.token, isString);
}

const response = (id, payload) => ({ type: 'res', id, ok: true, payload });
const failure = (id, code, message) => ({ type: 'res', id, ok: false, error: { code, message } });

/**
 * One connection's protocol state. `gateway` supplies `token`, `info()` (host, port, pid, version,
 * tickIntervalMs), and the method payloads `healthPayload()`, `status()`, `presence()`, `config()`. Every method returns
 * `{ send: [frames], close?: [code, reason], authenticated?: true }`.
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
    if (!validConnect(params)) return this.close(failure(id, 'INVALID_REQUEST', 'invalid connect params'), CLOSE.badParams);
    if (params.minProtocol > PROTOCOL || params.maxProtocol < PROTOCOL) {
      const message = `protocol ${PROTOCOL} is not in ${params.minProtocol}..=${params.maxProtocol}`;
      return this.close(failure(id, 'PROTOCOL_MISMATCH', message), CLOSE.mismatch);
    }
    const token = params.auth && params.auth.token;
    if (!token) return this.close(failure(id, 'AUTH_TOKEN_MISSING', 'connect needs auth.token'), CLOSE.unauthorized);
    if (!tokenMatches(token, this.gateway.token)) {
      return this.close(failure(id, 'AUTH_TOKEN_MISMATCH', 'auth.token is not the gateway token'), CLOSE.unauthorized);
    }
    return this.welcome(id, params);
  }

  welcome(id, params) {
    this.authenticated = true;
    this.client = { client: params.client, role: params.role || 'operator', scopes: params.scopes || [], connectedAtMs: Date.now() };
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
