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
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
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
      env: { ...process.env, GATEWAY_LOG: 'warn', ...env },
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
function rawHttp(port, bytes) {
  return within(
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(bytes));
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

module.exports = { GATEWAY, track, within, freePort, canBind, startGateway, runGateway, rawHttp, scratch };
