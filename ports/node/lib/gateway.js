'use strict';
// The gateway on a held listener: admission (DOOR-4), the state the protocol reports, and the graceful
// shutdown that releases the listener as its very last act (REL-4, SHUT-*).
const { Connection, GRACE_MS } = require('./connection');
const { MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD, PROTOCOL } = require('./protocol');
const { normalOrigin, VERSION } = require('./cli');
const { HEAD_TIMEOUT_MS } = require('./http');
const { Throttle } = require('./throttle');

const LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'];

class Gateway {
  /**
   * `listener`: the listening net.Server that holds the lock. `settings`: from the command line.
   * `auth`: `{ token, source }`. `onReleased()`: called once the listener is closed (the process exits).
   */
  constructor(listener, settings, auth, { onReleased, log }) {
    this.listener = listener;
    this.settings = settings;
    this.token = auth.token;
    this.tokenSource = auth.source;
    this.port = listener.address().port;
    this.startedAt = Date.now();
    this.connections = new Set();
    this.shuttingDown = false;
    this.released = false;
    this.onReleased = onReleased;
    this.logLine = log;
    this.throttle = new Throttle();
    listener.on('connection', (socket) => this.accept(socket));
    listener.on('error', (err) => this.log('warn', `accept failed: ${err.message}`));
  }

  log(level, message) {
    if (LEVELS.indexOf(level) <= LEVELS.indexOf(this.settings.logLevel)) this.logLine(`gateway: ${level}: ${message}`);
  }

  /** Admits a connection, evicting the oldest unauthenticated one when a limit is reached (DOOR-4). */
  accept(socket) {
    socket.on('error', () => {});
    if (this.shuttingDown) return socket.destroy();
    const unauthenticated = [...this.connections].filter((c) => !c.authenticated);
    const full = this.connections.size >= this.settings.maxConnections;
    if (full || unauthenticated.length >= this.settings.maxUnauthenticated) {
      if (unauthenticated.length === 0) return socket.destroy();
      unauthenticated[0].destroy();
    }
    this.connections.add(new Connection(this, socket));
    return undefined;
  }

  /** A failed connect (DOOR-8): counted; the throttle's notice is logged at warn, at most once per 10 s. */
  authFailed() {
    const notice = this.throttle.failed(performance.now());
    if (notice) this.log('warn', notice);
  }

  forget(connection) {
    this.connections.delete(connection);
    if (this.shuttingDown && this.connections.size === 0) this.release();
  }

  originAllowed(origin) {
    return this.settings.allowedOrigins.includes(normalOrigin(origin));
  }

  /** Begins the graceful shutdown once; a second call changes nothing (SHUT-3). */
  shutdown() {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.log('debug', `shutting down: ${this.connections.size} connection(s) to drain`);
    setTimeout(() => this.release(), GRACE_MS);
    for (const connection of [...this.connections]) connection.onShutdown();
    if (this.connections.size === 0) this.release();
  }

  /** Closes what is still open, then the listener (the lock) as the very last act. */
  release() {
    if (this.released) return;
    this.released = true;
    for (const connection of [...this.connections]) connection.socket.destroy();
    this.listener.close();
    this.onReleased();
  }

  info() {
    const { host, tickIntervalMs } = this.settings;
    return { host: host.address, port: this.port, pid: process.pid, version: VERSION, tickIntervalMs };
  }

  url() {
    return `ws://${this.settings.host.url}:${this.port}`;
  }

  /** The lock's view: the `/healthz` body. */
  health() {
    const clients = [...this.connections].filter((c) => c.authenticated).length;
    return {
      ok: true, status: 'live', pid: process.pid, host: this.settings.host.address, port: this.port,
      profile: null, version: VERSION, uptimeMs: Date.now() - this.startedAt,
      connections: this.connections.size, clients,
    };
  }

  /** The `health` method: OpenClaw's fields plus the lock's view. */
  healthPayload() {
    const openclaw = {
      ok: true, ts: Date.now(), durationMs: 0, channels: {}, channelOrder: [], channelLabels: {},
      heartbeatSeconds: 0, defaultAgentId: 'main', agents: [], sessions: { path: '', count: 0, recent: [] },
    };
    return { ...openclaw, ...this.health() };
  }

  status() {
    return { ...this.healthPayload(), url: this.url(), listening: this.url() };
  }

  presence() {
    return [...this.connections]
      .filter((c) => c.authenticated)
      .map(({ session }) => ({ connId: session.connId, ...session.client }));
  }

  config() {
    const s = this.settings;
    return {
      host: s.host.address, port: this.port, url: this.url(), protocol: PROTOCOL,
      auth: { mode: 'token', source: this.tokenSource }, allowedOrigins: s.allowedOrigins,
      allowedHosts: s.allowedHosts.map((h) => (h.name !== undefined ? h.name : h.address)),
      handshakeTimeoutMs: s.handshakeTimeoutMs, tickIntervalMs: s.tickIntervalMs, headTimeoutMs: HEAD_TIMEOUT_MS,
      shutdownGraceMs: GRACE_MS, maxPayload: MAX_PAYLOAD, maxPreauthPayload: MAX_PREAUTH_PAYLOAD,
      maxConnections: s.maxConnections, maxUnauthenticated: s.maxUnauthenticated,
    };
  }
}

module.exports = { Gateway };
