'use strict';
// Black-box helpers for the port's own tests: real processes, real sockets, readiness by the ready line
// with a deadline (never a sleep), scratch directories that are removed.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const GATEWAY = path.join(__dirname, '..', 'gateway.js');
const DEADLINE_MS = 10000;

const children = new Set();
// Every gateway a test starts gets a private HOME and TMPDIR, and no XDG_STATE_HOME unless the test gives
// one (DOOR-6): nothing it writes lands in the user's home or a shared temporary directory. The inherited
// GATEWAY_* variables are dropped so that the user's settings never change a test.
const world = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-lock-node-world-'));
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith('GATEWAY_') && name !== 'XDG_STATE_HOME'),
);
Object.assign(baseEnv, { HOME: world, TMPDIR: world });
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(world, { recursive: true, force: true });
});

/** Kills `child` when the test process exits, if it is still running then (nothing is left behind). */
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Resolves `promise`, or rejects after `ms` naming `what`. */
function within(promise, what, ms = DEADLINE_MS) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A port the OS says is free now (bound and released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** True if this process can bind host:port now (the lock is free). */
function canBind(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Starts `node gateway.js ...args`. Returns `{ child, stdout(), stderr(), ready, exited }`: `ready`
 * resolves with the ready line, `exited` with `{ code, signal }`.
 */
function startGateway(args, env = {}) {
  const child = track(
    spawn(process.execPath, [GATEWAY, ...args], {
      env: { ...baseEnv, GATEWAY_LOG: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  // 'close' comes after the exit and the end of stdout and stderr, so their text is complete by then.
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(line);
    });
    exited.then(({ code, signal }) => reject(new Error(`gateway exited (${code ?? signal}) before its ready line; stderr: ${err}`)));
  });
  ready.catch(() => {});
  return { child, ready, exited, stdout: () => out, stderr: () => err };
}

/** Runs the gateway to its end: `{ code, signal, stdout, stderr }`. */
async function runGateway(args, env = {}) {
  const g = startGateway(args, env);
  const { code, signal } = await within(g.exited, `gateway ${args.join(' ')}`);
  return { code, signal, stdout: g.stdout(), stderr: g.stderr() };
}

/** One HTTP exchange over a raw socket (the gateway closes every connection): the whole answer. */
function rawHttp(port, bytes, host = '127.0.0.1') {
  return within(
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => socket.write(bytes));
      let data = '';
      socket.on('data', (d) => {
        data += d;
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(data));
    }),
    'HTTP answer',
  );
}

/** A scratch directory for one test; `remove()` deletes it. */
function scratch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-lock-node-test-'));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A GET (or `method`) of `target` with a loopback Host, as any client sends it. */
function request(port, target, method = 'GET', extra = '') {
  return rawHttp(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`);
}

/** A world of its own for a process a test spawns directly (HOME, TMPDIR; no GATEWAY_*). */
const childEnv = (env = {}) => ({ ...baseEnv, ...env });

module.exports = { GATEWAY, track, request, childEnv, within, freePort, canBind, startGateway, runGateway, rawHttp, scratch };
