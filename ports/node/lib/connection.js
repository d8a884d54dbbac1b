'use strict';
// One accepted connection: its HTTP head, then either one response or a WebSocket session.
const http = require('./http');
const ws = require('./ws');
const { Session } = require('./protocol');

const GRACE_MS = 500;
const MAX_BUFFERED_BYTES = 2 * 1048576;

class Connection {
  constructor(gateway, socket) {
    this.gateway = gateway;
    this.socket = socket;
    this.phase = 'head'; // head -> responded | websocket
    this.received = Buffer.alloc(0);
    this.session = null;
    this.closing = false;
    this.timers = new Set();
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.guard(() => this.onData(chunk)));
    socket.on('error', () => {});
    socket.on('close', () => this.onClosed());
    this.after(http.HEAD_TIMEOUT_MS, () => this.phase === 'head' && this.respond(408));
  }

  /** Authenticated WebSocket client (DOOR-4 counts the others as unauthenticated). */
  get authenticated() {
    return this.session !== null && this.session.authenticated;
  }

  after(ms, fn) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.guard(fn);
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  every(ms, fn) {
    const timer = setInterval(() => this.guard(fn), ms);
    this.timers.add(timer);
  }

  /** Bad input must never take down the holder: an unexpected error ends this connection only. */
  guard(fn) {
    try {
      fn();
    } catch (err) {
      this.gateway.log('error', `connection dropped after an internal error: ${err && err.stack}`);
      this.destroy();
    }
  }

  destroy() {
    this.socket.destroy();
    this.onClosed();
  }

  onClosed() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.gateway.forget(this);
  }

  onData(chunk) {
    if (this.phase === 'websocket') return this.onFrames(chunk);
    if (this.phase !== 'head') return undefined;
    this.received = Buffer.concat([this.received, chunk]);
    const parsed = http.parseHead(this.received);
    if (parsed.incomplete) return undefined;
    if (parsed.status) return this.respond(parsed.status);
    return this.onRequest(parsed.request);
  }

  onRequest(request) {
    const decision = http.route(request, this.gateway);
    if (!decision.upgrade) return this.respond(decision.status, decision.body, request.method === 'HEAD');
    const key = request.headers.get('sec-websocket-key');
    if (!ws.validKey(key)) return this.respond(400);
    return this.upgrade(key, request.rest);
  }

  respond(status, body, head = false) {
    this.phase = 'responded';
    this.write(http.respond(status, body, { head }));
    this.socket.end();
    this.after(GRACE_MS, () => this.destroy());
  }

  write(bytes) {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(bytes);
    if (this.socket.writableLength > MAX_BUFFERED_BYTES) this.destroy();
  }

  upgrade(key, rest) {
    this.phase = 'websocket';
    this.received = null;
    this.write(http.switchingProtocols(ws.acceptKey(key)));
    this.session = new Session(this.gateway);
    this.reader = new ws.FrameReader();
    this.apply(this.session.open());
    this.after(this.gateway.settings.handshakeTimeoutMs, () => this.apply(this.session.handshakeTimeout()));
    if (rest.length) this.onFrames(rest);
  }

  /** Carries out a Session decision: frames to send, authentication, a close. */
  apply({ send, close, authenticated }) {
    for (const frame of send) this.write(ws.encodeFrame(ws.OP.text, Buffer.from(JSON.stringify(frame))));
    if (authenticated) this.every(this.gateway.settings.tickIntervalMs, () => this.apply(this.session.tick()));
    if (close) this.closeWith(close[0], close[1]);
  }

  /** Sends a close frame and waits at most the grace period for the client's reply. */
  closeWith(code, reason) {
    if (this.closing) return;
    this.closing = true;
    this.write(ws.closeFrame(code, reason));
    this.socket.end();
    this.after(GRACE_MS, () => this.destroy());
  }

  onFrames(chunk) {
    this.reader.push(chunk);
    for (;;) {
      const event = this.reader.next(this.session.limit());
      if (event === null || this.socket.destroyed) return;
      this.onEvent(event);
    }
  }

  onEvent(event) {
    if (event.kind === 'close') return this.onCloseFrame(event);
    if (this.closing) return undefined;
    if (event.kind === 'message') return this.apply(this.session.onMessage(event.data));
    if (event.kind === 'ping') return this.write(ws.encodeFrame(ws.OP.pong, event.data));
    if (event.kind === 'violation') {
      if (event.code === 1009) return this.apply(this.session.tooLarge());
      this.session.closed = true;
      return this.closeWith(event.code, event.reason);
    }
    return undefined;
  }

  onCloseFrame(event) {
    if (this.closing) return this.destroy();
    this.session.closed = true;
    const valid = event.code === 1005 || (event.code >= 1000 && event.code < 5000);
    this.closing = true;
    this.write(event.code === 1005 ? ws.encodeFrame(ws.OP.close, Buffer.alloc(0)) : ws.closeFrame(valid ? event.code : 1002, ''));
    this.socket.end();
    return this.after(GRACE_MS, () => this.destroy());
  }

  /** Graceful shutdown (SHUT-1, protocol.md "HTTP on the same port"). */
  onShutdown() {
    if (this.phase === 'head' && this.received.length === 0) return this.destroy();
    if (this.phase === 'websocket') return this.apply(this.session.shutdown());
    return undefined;
  }
}

module.exports = { Connection, GRACE_MS };
