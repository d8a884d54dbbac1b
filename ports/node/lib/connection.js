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
    this.waiting = false; // the first frame waits for its turn (DOOR-8)
    this.blocked = false; // our unsent backlog is full (maxBufferedBytes)
    this.looked = false; // the first message was taken for a turn
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
    return this.upgrade(decision.upgrade, this.received.subarray(request.length));
  }

  /**
   * Answers and closes our side. The exchange is finished, and no longer holds a drain, once the whole
   * response is written and our side closed (REL-4); the client's own close is not waited for.
   */
  respond(status, body, head = false) {
    this.phase = 'responded';
    this.socket.pause(); // bytes after the head (a body, a pipelined request) are never read
    this.socket.end(http.respond(status, body, { head }), () => this.gateway.forget(this));
    this.after(GRACE_MS, () => this.destroy());
  }

  /**
   * Queues `bytes` for the client. Past maxBufferedBytes unsent, the client's frames are not read until the
   * kernel has taken the backlog (protocol.md, policy.maxBufferedBytes): never buffered without bound.
   */
  write(bytes) {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (!this.socket.write(bytes) && this.socket.writableLength >= MAX_BUFFERED_BYTES && !this.blocked) {
      this.blocked = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.blocked = false;
        this.resume();
      });
    }
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

  /** Carries out a Session decision: frames to send, authentication, a close, a failed authentication. */
  apply({ send, close, authenticated, authFailed }) {
    for (const frame of send) this.write(ws.encodeFrame(ws.OP.text, Buffer.from(JSON.stringify(frame))));
    if (authenticated) this.every(this.gateway.settings.tickIntervalMs, () => this.tick());
    if (authFailed) this.gateway.authFailed();
    if (close) this.closeWith(close[0], close[1]);
  }

  /** A tick is sent only when nothing is waiting to be sent: missed ticks are not queued (seq counts sent events). */
  tick() {
    if (this.socket.writableLength === 0) this.apply(this.session.tick());
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
    this.pump();
  }

  /** Handles the frames read so far, unless the client must wait (its turn, DOOR-8, or our backlog). */
  pump() {
    while (!this.waiting && !this.blocked && !this.socket.destroyed) {
      const event = this.reader.next(this.session.limit());
      if (event === null) return;
      this.onEvent(event);
    }
  }

  resume() {
    if (this.waiting || this.blocked || this.socket.destroyed) return;
    this.socket.resume();
    this.guard(() => this.pump());
  }

  onEvent(event) {
    if (event.kind === 'close') return this.onCloseFrame(event);
    if (this.closing) return undefined;
    if (event.kind === 'message') return this.onMessage(event.data);
    if (event.kind === 'ping') return this.write(ws.encodeFrame(ws.OP.pong, event.data));
    if (event.kind === 'violation') {
      if (event.code === 1009) return this.apply(this.session.tooLarge());
      this.session.closed = true;
      return this.closeWith(event.code, event.reason);
    }
    return undefined;
  }

  /**
   * A whole message. An unauthenticated client's first one waits for its turn while failed connects are
   * throttled (DOOR-8); the wait counts against the handshake timeout and ends with the connection.
   */
  onMessage(data) {
    if (!this.session.authenticated && !this.looked) {
      this.looked = true;
      const wait = this.gateway.throttle.wait(performance.now());
      if (wait > 0) {
        this.waiting = true;
        this.socket.pause();
        this.after(wait, () => {
          this.waiting = false;
          if (!this.closing) this.apply(this.session.onMessage(data));
          this.resume();
        });
        return undefined;
      }
    }
    return this.apply(this.session.onMessage(data));
  }

  /**
   * The client's close (PROTO-11): answered at once with its code (none when it sent none), then our side
   * is closed; nothing is sent after it. A close breaking the rules never gets here (the reader: 1002).
   */
  onCloseFrame(event) {
    if (this.closing) return this.destroy();
    this.session.closed = true;
    this.closing = true;
    this.write(event.code === null ? ws.encodeFrame(ws.OP.close, Buffer.alloc(0)) : ws.closeFrame(event.code, ''));
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
