'use strict';
// Unit tests of the port's I/O-free parts: host and port values (CLI-2, LOCK-4, FUZZ-1), the request-head
// parser (SRV-3, FUZZ-1), the frame gate (PROTO-7), the handshake (PROTO-3..5, PROTO-10) and the token
// comparison (DOOR-1). Random cases come from a seeded generator, so a failure replays.
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseHost, parsePort, isLoopback, ValueError } = require('../lib/host');
const { parseHead } = require('../lib/http');
const { FrameReader } = require('../lib/ws');
const { Session, tokenMatches } = require('../lib/protocol');
const { parseCommandLine, UsageError, NoAuthError } = require('../lib/cli');

function rng(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
}

test('LOCK-4 FUZZ-1: a literal host round-trips through its printed form; names are never accepted', () => {
  const r = rng(13);
  for (let i = 0; i < 2000; i++) {
    const groups = Array.from({ length: 8 }, () => (r(3) === 0 ? 0 : r(65536)));
    const text = groups.map((g) => g.toString(16)).join(':');
    const host = parseHost(text);
    assert.deepEqual(parseHost(host.address), host, text);
    assert.deepEqual(parseHost(host.url), host, text);
  }
  assert.equal(parseHost('localhost').address, '127.0.0.1');
  assert.equal(parseHost('0:0:0:0:0:0:0:1').url, '[::1]');
  assert.equal(parseHost('::ffff:7f00:1').address, '::ffff:127.0.0.1');
  for (const bad of ['', 'example.com', 'localhost.', '0177.0.0.1', '127.1', '01.2.3.4', 'fe80::1%lo', '[::1', '1.2.3.4:80', ' ::1']) {
    assert.throws(() => parseHost(bad), ValueError, bad);
  }
  assert.ok(isLoopback(parseHost('127.9.9.9')) && isLoopback(parseHost('::1')) && isLoopback(parseHost('::ffff:127.0.0.1')));
  assert.ok(!isLoopback(parseHost('0.0.0.0')) && !isLoopback(parseHost('::')));
});

test('CLI-2 FUZZ-1: --port accepts exactly the integers 0-65535', () => {
  for (let p = 0; p <= 65535; p += 97) assert.equal(parsePort(String(p)), p);
  assert.equal(parsePort('65535'), 65535);
  for (const bad of ['', 'abc', '-1', '65536', '1e3', '0x10', ' 1', '1 ', '99999999999999999999']) {
    assert.throws(() => parsePort(bad), ValueError, bad);
  }
});

test('CLI-2 DOOR-2: bad usage is a UsageError naming the flag; no token off loopback is NoAuthError', () => {
  assert.throws(() => parseCommandLine(['run', '--port', 'abc'], {}), /invalid value 'abc' for '--port <PORT>'/);
  assert.throws(() => parseCommandLine(['run', '--wat'], {}), UsageError);
  assert.throws(() => parseCommandLine(['run', '--host', 'a\x1b[2J'], {}), (e) => e instanceof UsageError && !e.message.includes('\x1b'));
  assert.throws(() => parseCommandLine(['run', '--tick-interval-ms', '5'], {}), UsageError);
  assert.throws(() => parseCommandLine(['run'], { GATEWAY_PORT: 'x' }), /\(from GATEWAY_PORT\)/);
  assert.throws(() => parseCommandLine(['run', '--host', '192.0.2.1'], {}), NoAuthError);
  assert.equal(parseCommandLine(['run', '--host', '192.0.2.1'], { GATEWAY_TOKEN_FILE: '/x' }).command, 'run');
  const s = parseCommandLine(['run', '--port=7', '--allow-origin', 'HTTP://A.example/'], { GATEWAY_ALLOW_ORIGINS: 'http://b' }).settings;
  assert.deepEqual([s.port, s.allowedOrigins], [7, ['http://a.example']]);
});

test('SRV-3 FUZZ-1: every prefix of a complete head is incomplete, and the head parses the same', () => {
  const head = Buffer.from('GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: b\r\n\r\n');
  const whole = parseHead(head);
  assert.equal(whole.request.path, '/healthz');
  for (let n = 0; n < head.length; n++) assert.deepEqual(parseHead(head.subarray(0, n)), { incomplete: true }, `prefix ${n}`);
  const r = rng(7);
  for (let i = 0; i < 3000; i++) {
    const bytes = Buffer.from(Array.from({ length: r(64) }, () => r(256)));
    const out = parseHead(bytes);
    assert.ok(out.incomplete || out.status === 400 || out.status === 431 || out.request, JSON.stringify(out));
  }
  assert.equal(parseHead(Buffer.from(`GET / HTTP/1.1\r\n${'a: b\r\n'.repeat(33)}\r\n`)).status, 431);
  assert.equal(parseHead(Buffer.alloc(9000, 0x61)).status, 431);
  assert.equal(parseHead(Buffer.from('GET\r\n')).status, 400, 'a bad request line is refused at once');
  assert.equal(parseHead(Buffer.from(`GET / HTTP/1.1\r\nx: ${'a'.repeat(9000)}`)).status, 431);
});

function masked(opcode, payload, { fin = true, announce } = {}) {
  const len = announce ?? payload.length;
  const head = len < 126 ? Buffer.from([0, 0x80 | len]) : Buffer.from([0, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (len >= 126) head.writeUInt32BE(len, 6);
  head[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([head, Buffer.from([9, 8, 7, 6]), Buffer.from(payload.map((b, i) => b ^ [9, 8, 7, 6][i & 3]))]);
}

test('PROTO-7: the frame gate refuses a frame or message over the limit from its header, unread', () => {
  const reader = new FrameReader();
  reader.push(masked(1, Buffer.alloc(0), { announce: 900 * 1024 }));
  assert.deepEqual(reader.next(65536), { kind: 'violation', code: 1009, reason: 'frame too large' });
  reader.push(masked(1, Buffer.from('x')));
  assert.equal(reader.next(65536), null, 'a refusal is final');
  const fragments = new FrameReader();
  fragments.push(masked(1, Buffer.alloc(40000), { fin: false }));
  fragments.push(masked(0, Buffer.alloc(40000)));
  assert.equal(fragments.next(65536).code, 1009, 'the message, the sum of its fragments, counts');
  const ok = new FrameReader();
  ok.push(masked(1, Buffer.from('{"a":1}')));
  assert.equal(ok.next(65536).data.toString(), '{"a":1}');
  const r = rng(3);
  for (let i = 0; i < 3000; i++) {
    const fr = new FrameReader();
    fr.push(Buffer.from(Array.from({ length: r(40) }, () => r(256))));
    for (let e = fr.next(65536), k = 0; e !== null && k < 50; e = fr.next(65536), k++) assert.ok(typeof e.kind === 'string');
  }
});

const gateway = {
  token: 's3cret',
  info: () => ({ host: '127.0.0.1', port: 1, pid: 1, version: '0', tickIntervalMs: 50 }),
  healthPayload: () => ({ ok: true }),
  status: () => ({}),
  presence: () => [],
  config: () => ({}),
};
const connect = (over = {}) =>
  JSON.stringify({
    type: 'req', id: 'c', method: 'connect',
    params: { minProtocol: 4, maxProtocol: 4, client: { id: 'i', version: '1', platform: 'p', mode: 'm' }, auth: { token: 's3cret' }, ...over },
  });

test('PROTO-3 PROTO-4 PROTO-5 PROTO-10: the handshake answers every first frame and closes with the right code', () => {
  const first = (text) => new Session(gateway).onMessage(Buffer.from(text));
  assert.deepEqual(first('nope').close, [1008, 'invalid handshake: first request must be connect']);
  assert.equal(first('nope').send[0].id, null);
  assert.deepEqual(first('{"type":"req","id":"1","method":"health"}').close, [1008, 'invalid handshake: first request must be connect']);
  assert.deepEqual(first(connect({ client: 7 })).close, [1008, 'invalid connect params']);
  assert.deepEqual(first(connect({ minProtocol: 5, maxProtocol: 6 })).close, [1002, 'protocol mismatch']);
  assert.equal(first(connect({ auth: {} })).send[0].error.code, 'AUTH_TOKEN_MISSING');
  assert.equal(first(connect({ auth: { token: 's3cre' } })).send[0].error.code, 'AUTH_TOKEN_MISMATCH');
  const s = new Session(gateway);
  const hello = s.onMessage(Buffer.from(connect()));
  assert.equal(hello.send[0].payload.type, 'hello-ok');
  assert.equal(s.limit(), 1048576);
  const bad = s.onMessage(Buffer.from('[1,2'));
  assert.deepEqual([bad.send[0].error.code, bad.close], ['INVALID_REQUEST', undefined], 'after hello-ok the connection stays usable');
  assert.equal(s.onMessage(Buffer.from('{"type":"req","id":"2","method":"x"}')).send[0].error.code, 'METHOD_NOT_FOUND');
  assert.deepEqual(s.tick().send[0].seq, 1);
  const bye = s.shutdown();
  assert.deepEqual([bye.send[0].event, bye.send[0].seq, bye.close], ['shutdown', 2, [1012, 'service restart']]);
});

test('DOOR-1: only the exact token matches', () => {
  const r = rng(1);
  for (let i = 0; i < 2000; i++) {
    const a = Array.from({ length: r(6) }, () => 'ab'[r(2)]).join('');
    const b = Array.from({ length: r(6) }, () => 'ab'[r(2)]).join('');
    assert.equal(tokenMatches(a, b), a === b, `${a} vs ${b}`);
  }
});
