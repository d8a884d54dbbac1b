'use strict';
// The front door and the wire on a real listener and real sockets, in process: DOOR-7 (Host check),
// DOOR-8 (throttled failed connects), PROTO-15/16 (upgrade key, WebSocket violations), PROTO-11 (a
// client's close), SRV-3's details (query strings, exact paths, the head's size boundary, versions) and
// REL-4 (an HTTP exchange is finished once the response is written).
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./harness');
const { connect, frame, text, CONNECT, KEY } = require('./wsclient');
const { acquireGatewayLock } = require('..');
const { Gateway } = require('../lib/gateway');
const { parseCommandLine } = require('../lib/cli');

/** An in-process gateway on a free loopback port; `stop()` shuts it down and waits for the release. */
async function gateway(args = [], host = '127.0.0.1') {
  const { settings } = parseCommandLine(['run', '--port', '0', '--host', host, '--token', 's3cret', ...args], {});
  const listener = await acquireGatewayLock(host, 0);
  const logged = [];
  let released;
  const whenReleased = new Promise((resolve) => {
    released = resolve;
  });
  const g = new Gateway(listener, settings, { token: 's3cret', source: 'value' }, { onReleased: () => released(), log: (l) => logged.push(l) });
  const port = listener.address().port;
  const stop = () => {
    g.shutdown();
    return h.within(whenReleased, 'release');
  };
  return { g, port, logged, stop };
}

/** The status code the gateway answers `bytes` with (as soon as its status line came: a 101 stays open). */
function statusOf(port, bytes) {
  return h.within(
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(bytes));
      let data = '';
      socket.on('data', (d) => {
        data += d;
        if (data.includes('\r\n')) {
          socket.destroy();
          resolve(data.split(' ')[1]);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(data === '' ? 'closed' : data.split(' ')[1]));
    }),
    'a status line',
  );
}

test('DOOR-7: a foreign Host gets 421 and no health body; HTTP/1.1 without Host, or with two, gets 400', async (t) => {
  const { port, stop } = await gateway(['--allow-host', 'gw.example:443']);
  t.after(stop);
  const get = (host, target = '/healthz') => statusOf(port, `GET ${target} HTTP/1.1\r\n${host}\r\n`);
  for (const ok of [`127.0.0.1:${port}`, 'localhost', 'LocalHost.:1', '127.9.9.9', '[::1]:80', '[::ffff:127.0.0.1]', 'gw.example', 'GW.EXAMPLE.:8']) {
    assert.equal(await get(`Host: ${ok}\r\n`), '200', ok);
  }
  for (const foreign of ['evil.example', 'evil.example:' + port, '10.0.0.1', '[::2]', 'localhost.evil.example']) {
    const answer = await h.rawHttp(port, `GET /healthz HTTP/1.1\r\nHost: ${foreign}\r\n\r\n`);
    assert.ok(answer.startsWith('HTTP/1.1 421 Misdirected Request\r\n'), foreign);
    assert.equal(answer.split('\r\n\r\n')[1], '421 Misdirected Request', 'the plain-text body and nothing else');
  }
  assert.equal(await get('Host: evil.example\r\n', '/'), '421', 'upgrades and every path alike');
  assert.equal(await get('Host: evil.example\r\n', '/readyz'), '421');
  for (const bad of ['', 'Host: a\r\nHost: a\r\n', 'Host: \r\n', 'Host: a:99999\r\n', 'Host: a b\r\n', 'Host: [::1\r\n', 'Host: x:1:2\r\n']) {
    assert.equal(await get(bad), '400', JSON.stringify(bad));
  }
  assert.equal(await statusOf(port, 'GET /healthz HTTP/1.0\r\n\r\n'), '200', 'HTTP/1.0 without Host is served');
  assert.equal(await get('Host: a:\r\n'), '421', 'an empty port is well-formed (protocol.md, Host)');
});

test('DOOR-7: bound to the wildcard, any address is this host; names still need --allow-host', async (t) => {
  const { port, stop } = await gateway([], '0.0.0.0');
  t.after(stop);
  assert.equal(await statusOf(port, 'GET /healthz HTTP/1.1\r\nHost: 192.0.2.7\r\n\r\n'), '200');
  assert.equal(await statusOf(port, 'GET /healthz HTTP/1.1\r\nHost: name.example\r\n\r\n'), '421');
});

test('PROTO-15: an upgrade needs Upgrade and Connection (426), version 13 and the base64 of 16 bytes as key (400)', async (t) => {
  const { port, stop } = await gateway();
  t.after(stop);
  const up = (extra) => statusOf(port, `GET / HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`);
  const headers = (key, version = '13') => `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: ${version}\r\nSec-WebSocket-Key: ${key}\r\n`;
  assert.equal(await up(`Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`), '426', 'no Connection: upgrade');
  assert.equal(await up(`Upgrade: h2c, WebSocket\r\nConnection: keep-alive, UPGRADE\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`), '101');
  for (const key of ['abc', '', 'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ==x', 'dGhlIHNhbXBsZSBub25j*Q==', 'dGhlIHNhbXBsZSBub25jZSE=']) {
    assert.equal(await up(headers(key)), '400', key);
  }
  assert.equal(await up(headers(KEY, '8')), '400');
  assert.equal(await up(headers(`  ${KEY} `)), '101', 'surrounding whitespace is trimmed');
  assert.equal(await statusOf(port, `POST / HTTP/1.1\r\nHost: localhost\r\n${headers('abc')}\r\n`), '405', 'the method first');
  assert.equal(await up(`${headers(KEY)}Origin: http://evil.example\r\n`), '403', 'then the Origin (DOOR-3)');
});

test('PROTO-16: WebSocket violations close 1002, text that is not UTF-8 closes 1007, each with a close frame', async (t) => {
  const { port, stop } = await gateway();
  t.after(stop);
  const violations = {
    unmasked: frame(1, '{}', { mask: false }),
    rsv: frame(1, '{}', { rsv: 2 }),
    'reserved opcode': frame(3, ''),
    'fragmented ping': frame(9, 'x', { fin: false }),
    'ping over 125 bytes': Buffer.concat([Buffer.from([0x89, 0xfe, 0, 126]), Buffer.from([0, 0, 0, 0]), Buffer.alloc(126)]),
    'continuation without a message': frame(0, 'x'),
    'text inside a fragmented message': Buffer.concat([frame(1, '{', { fin: false }), frame(1, '}')]),
    'close with 1 byte': frame(8, Buffer.from([3])),
    'close with code 1005': frame(8, Buffer.from([0x03, 0xed])),
    'close with code 2000': frame(8, Buffer.from([0x07, 0xd0])),
  };
  for (const authenticated of [false, true]) {
    for (const [name, bytes] of Object.entries(violations)) {
      const c = await connect(port);
      assert.equal((await c.next()).json.event, 'connect.challenge');
      if (authenticated) {
        c.send(text(CONNECT('s3cret')));
        assert.equal((await c.next()).json.payload.type, 'hello-ok');
      }
      c.send(bytes);
      const close = await c.next();
      assert.deepEqual([close && close.opcode, close && close.code], [8, 1002], `${name} (authenticated: ${authenticated})`);
      c.socket.destroy();
    }
    const c = await connect(port);
    await c.next();
    if (authenticated) {
      c.send(text(CONNECT('s3cret')));
      await c.next();
    }
    c.send(frame(1, Buffer.from([0x7b, 0xff, 0x7d])));
    const close = await c.next();
    assert.deepEqual([close.opcode, close.code], [8, 1007], `invalid UTF-8 (authenticated: ${authenticated})`);
    c.socket.destroy();
  }
  const binary = await connect(port);
  await binary.next();
  binary.send(frame(2, Buffer.from([0xff])));
  const answer = await binary.next();
  assert.deepEqual([answer.opcode, JSON.parse(answer.payload).error.code], [1, 'INVALID_REQUEST'], 'binary is not checked for UTF-8');
  binary.socket.destroy();
});

test('PROTO-11: a close the client begins is answered at once with its code (none when it sent none), then nothing', async (t) => {
  const { port, stop } = await gateway(['--tick-interval-ms', '10']);
  t.after(stop);
  for (const [payload, want] of [[Buffer.from([0x0f, 0xa0, 0x68, 0x69]), 4000], [Buffer.alloc(0), undefined], [Buffer.from([0x03, 0xe8]), 1000]]) {
    const c = await connect(port);
    await c.next();
    c.send(text(CONNECT('s3cret')));
    await c.next();
    c.send(frame(8, payload));
    let reply = await c.next();
    while (reply && reply.opcode === 1) reply = await c.next(); // ticks sent before the close was read
    assert.deepEqual([reply.opcode, reply.code], [8, want]);
    assert.equal(await c.next(), null, 'nothing after the close; the connection ends');
  }
});

test('DOOR-8: failed connects are throttled for everyone; the right token is never refused', async (t) => {
  const { g, port, logged, stop } = await gateway();
  t.after(stop);
  const attempt = async (token) => {
    const c = await connect(port);
    await c.next();
    c.send(text(CONNECT(token)));
    const reply = await c.next();
    c.socket.destroy();
    return reply.json;
  };
  for (let i = 0; i < 20; i++) assert.equal((await attempt('wrong')).error.code, 'AUTH_TOKEN_MISMATCH');
  assert.ok(g.throttle.full(performance.now()), 'twenty failures fill the bucket');
  const wrong = await attempt('wrong');
  assert.equal(wrong.error.code, 'AUTH_TOKEN_MISMATCH', 'throttled, never refused for it');
  assert.equal(logged.filter((l) => l.includes('authentication throttled')).length, 1, 'one notice');
  assert.ok(!logged.join('\n').includes('wrong') && !logged.join('\n').includes('s3cret'), 'never a token');
  assert.equal((await attempt('s3cret')).payload.type, 'hello-ok', 'the right token still gets in');
});

test('SRV-3: query strings ignored, paths exact, bodies never read, versions 1.0/1.1 only', async (t) => {
  const { port, stop } = await gateway();
  t.after(stop);
  const get = (target, method = 'GET', extra = '') => statusOf(port, `${method} ${target} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`);
  assert.equal(await get('/healthz?x=1'), '200');
  assert.equal(await get('/healthz#f'), '200');
  assert.equal(await get('/?x=1', 'GET', `Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`), '101');
  for (const target of ['/healthz/', '/HEALTHZ', '/%68ealthz', '//healthz', 'http://localhost/healthz', '*']) assert.equal(await get(target), '404', target);
  assert.equal(await get('/healthz', 'get'), '405', 'methods are case-sensitive');
  assert.equal(await statusOf(port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n'), '200', 'a body and a pipelined request change nothing');
  assert.equal(await get('/healthz', 'POST', 'Transfer-Encoding: chunked\r\n'), '405');
  assert.equal(await statusOf(port, 'GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n'), '400');
  assert.equal(await statusOf(port, 'GET /healthz HTTP/1.1\nHost: localhost\n\n'), '200', 'bare LF ends a line');
});

test('SRV-3: a head of 8192 bytes and 32 fields is read; 8193 bytes or a 33rd field is 431', async (t) => {
  const { port, stop } = await gateway();
  t.after(stop);
  const head = (size, fields = 1) => {
    const start = `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${'A: b\r\n'.repeat(fields - 1)}`;
    const pad = size - start.length - 'X: \r\n\r\n'.length;
    return `${start}X: ${'a'.repeat(pad)}\r\n\r\n`;
  };
  assert.equal(head(8192).length, 8192);
  assert.equal(await statusOf(port, head(8192)), '200');
  assert.equal(await statusOf(port, head(8193)), '431');
  assert.equal(await statusOf(port, head(4000, 31)), '200', '32 fields with X');
  assert.equal(await statusOf(port, head(4000, 32)), '431', 'a 33rd field');
  const early = await h.rawHttp(port, `GET /healthz HTTP/1.1\r\n${'A: b\r\n'.repeat(33)}`);
  assert.ok(early.startsWith('HTTP/1.1 431 '), 'answered as soon as the 33rd field is seen, before the head ends');
});

test('REL-4: an HTTP exchange is finished once its response is written, whether or not the client closes', async (t) => {
  const { g, port, stop } = await gateway();
  const lingering = net.connect({ port, host: '127.0.0.1' });
  lingering.on('error', () => {});
  lingering.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await h.within(new Promise((resolve) => lingering.once('data', resolve)), 'the response');
  await h.within((async () => {
    while (g.connections.size > 0) await new Promise((resolve) => setImmediate(resolve));
  })(), 'the exchange counted as finished while the client still holds its socket');
  const body = JSON.parse((await h.request(port, '/healthz')).split('\r\n\r\n')[1]);
  assert.equal(body.connections, 1, 'only the asking connection is open');
  await stop();
  assert.ok(await h.canBind(port), 'released although the client never closed');
  lingering.destroy();
  t.diagnostic('released without waiting for the lingering client');
});

test('PROTO-2: a client that never reads is not buffered for without bound (maxBufferedBytes); others are served', async (t) => {
  const { g, port, stop } = await gateway();
  t.after(stop);
  const greedy = await connect(port);
  await greedy.next();
  greedy.send(text(CONNECT('s3cret')));
  await greedy.next();
  greedy.socket.pause(); // never reads again
  const request = text({ type: 'req', id: 'h', method: 'health' });
  greedy.send(Buffer.concat(Array.from({ length: 40000 }, () => request)));
  const conn = () => [...g.connections].find((c) => c.authenticated);
  await h.within((async () => {
    while (!conn().blocked) await new Promise((resolve) => setTimeout(resolve, 5));
  })(), 'the gateway stops reading the client');
  assert.ok(conn().socket.writableLength <= 2 * 1048576 + 65536, `${conn().socket.writableLength} bytes unsent`);
  const other = await connect(port);
  await other.next();
  other.send(text(CONNECT('s3cret')));
  assert.equal((await other.next()).json.payload.type, 'hello-ok', 'another client is served meanwhile');
  other.socket.destroy();
  greedy.socket.destroy();
});
