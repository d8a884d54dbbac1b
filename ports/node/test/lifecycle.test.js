'use strict';
// The in-process lifecycle (LIFE-*, reported n/a by the conformance runner): a gateway on a real
// listener and real sockets, its release observed through onReleased and by binding the port.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./harness');
const { acquireGatewayLock } = require('..');
const { Gateway } = require('../lib/gateway');
const { parseCommandLine } = require('../lib/cli');

async function gatewayOnFreePort() {
  const listener = await acquireGatewayLock('127.0.0.1', 0);
  const { settings } = parseCommandLine(['run', '--port', '0', '--token', 't'], {});
  let released = 0;
  let onRelease = () => {};
  const gateway = new Gateway(listener, settings, { token: 't', source: 'value' }, {
    onReleased: () => {
      released += 1;
      onRelease();
    },
    log: () => {},
  });
  const whenReleased = new Promise((resolve) => {
    onRelease = resolve;
  });
  return { gateway, port: listener.address().port, releases: () => released, whenReleased };
}

/** A client that sent part of a request head (so the drain must wait for it), connected and admitted. */
async function partialClient(g) {
  const socket = net.connect({ port: g.port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await h.within(new Promise((resolve) => socket.once('connect', resolve)), 'connect');
  socket.write('GET /healthz HTTP/1.1\r\n');
  await h.within((async () => {
    while (g.gateway.connections.size === 0 || [...g.gateway.connections][0].received.length === 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  })(), 'admission');
  return socket;
}

test('LIFE-1 LIFE-3: the listener is released once, only when drained, and a second shutdown changes nothing', async () => {
  const g = await gatewayOnFreePort();
  const client = await partialClient(g);
  g.gateway.shutdown();
  g.gateway.shutdown();
  assert.equal(g.releases(), 0, 'not released while a connection drains');
  assert.equal(await h.canBind(g.port), false, 'the port stays held while draining');
  client.end('\r\n');
  await h.within(g.whenReleased, 'release after the drain');
  assert.equal(g.releases(), 1);
  assert.ok(await h.canBind(g.port), 'the port is free once released');
  g.gateway.release();
  assert.equal(g.releases(), 1, 'released exactly once');
});

test('LIFE-1: the deadline releases the listener, abandoning a connection that never finishes', async () => {
  const g = await gatewayOnFreePort();
  const client = await partialClient(g);
  const began = Date.now();
  g.gateway.shutdown();
  await h.within(g.whenReleased, 'release at the deadline');
  assert.ok(Date.now() - began >= 400, 'not before the grace period');
  assert.equal(g.releases(), 1);
  client.destroy();
});

test('LIFE-2: a connection accepted once shutdown has begun is closed at once', async () => {
  const g = await gatewayOnFreePort();
  const holder = await partialClient(g);
  g.gateway.shutdown();
  const late = net.connect({ port: g.port, host: '127.0.0.1' });
  late.on('error', () => {});
  await h.within(new Promise((resolve) => late.once('close', resolve)), 'the late connection closed');
  assert.equal(g.gateway.connections.size, 1, 'only the draining connection was ever admitted');
  holder.destroy();
  await h.within(g.whenReleased, 'release');
});
