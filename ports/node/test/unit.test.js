'use strict';
// Unit tests of the port's I/O-free parts: host and port values (CLI-2, LOCK-4, FUZZ-1), the request-head
// parser (SRV-3, FUZZ-1), the frame gate (PROTO-7), the handshake (PROTO-3..5, PROTO-10) and the token
// comparison (DOOR-1). Random cases come from a seeded generator, so a failure replays.
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseHost, parsePort, isLoopback, ValueError } = require('../lib/host');
const { parseHead, route } = require('../lib/http');
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

const { safeText } = require('../lib/text');
const { joinArguments, shownName } = require('../lib/holder');
const { Throttle } = require('../lib/throttle');
const { checkHost, parseHostValue } = require('../lib/hostcheck');
const { BadLogLevel, normalOrigin } = require('../lib/cli');

test('LOCK-4: hosts accepted in order and printed as cli.md "Hosts" says (RFC 5952, mapped addresses dotted)', () => {
  const printed = (text) => parseHost(text).address;
  assert.equal(printed('LocalHost'), '127.0.0.1');
  assert.equal(printed('[127.0.0.1]'), '127.0.0.1');
  assert.equal(printed('[::FFFF:7F00:1]'), '::ffff:127.0.0.1');
  assert.equal(printed('0:0:0:0:0:0:0:1'), '::1');
  assert.equal(printed('::1.2.3.4'), '::102:304');
  assert.equal(printed('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the first of two tied runs');
  assert.equal(printed('2001:DB8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'a single zero group is not ::');
  assert.equal(parseHost('::1').url, '[::1]');
  for (const bad of ['[]', '[[::1]]', '[localhost]', 'fe80::1%lo', '127.0.0.01', '1.2.3.256', '::1 ', 'loc\u0430lhost']) {
    assert.throws(() => parseHost(bad), ValueError, bad);
  }
  assert.ok(isLoopback(parseHost('::ffff:127.0.0.1')) && !isLoopback(parseHost('::ffff:10.0.0.1')));
});

test('CLI-2: --port takes ASCII digits after an optional +, leading zeros allowed, nothing trimmed', () => {
  assert.deepEqual(['+80', '0080', '+0', '065535'].map(parsePort), [80, 80, 0, 65535]);
  for (const bad of ['+', '++1', '-0', ' 80', '80 ', '+-1', '８０', '065536']) assert.throws(() => parsePort(bad), ValueError, bad);
});

test('CLI-3: a set variable is a value even when empty (exit 2 naming the flag); GATEWAY_LOG takes six levels', () => {
  for (const name of ['GATEWAY_PORT', 'GATEWAY_HOST', 'GATEWAY_TOKEN', 'GATEWAY_TOKEN_FILE',
    'GATEWAY_HANDSHAKE_TIMEOUT_MS', 'GATEWAY_TICK_INTERVAL_MS', 'GATEWAY_MAX_CONNECTIONS', 'GATEWAY_MAX_UNAUTHENTICATED']) {
    assert.throws(() => parseCommandLine(['run'], { [name]: '' }), (e) => e instanceof UsageError && e.message.includes(`(from ${name})`), name);
  }
  assert.equal(parseCommandLine(['run', '--port', '0'], { GATEWAY_PORT: '' }).settings.port, 0, 'a flag wins; its variable is not looked at');
  assert.deepEqual(parseCommandLine(['run'], { GATEWAY_ALLOW_ORIGINS: '' }).settings.allowedOrigins, [], 'the one list: empty means none');
  assert.throws(() => parseCommandLine(['run'], { GATEWAY_PORT: ' 80' }), UsageError, 'nothing is trimmed');
  for (const level of ['off', 'ERROR', 'Warn', 'info', 'debug', 'TRACE']) {
    assert.equal(parseCommandLine(['run'], { GATEWAY_LOG: level }).settings.logLevel, level.toLowerCase());
  }
  assert.equal(parseCommandLine(['run'], {}).settings.logLevel, 'info');
  for (const bad of ['', '3', 'warning', ' info', 'inf\u0131', 'x\x1b[2J']) {
    assert.throws(() => parseCommandLine(['run'], { GATEWAY_LOG: bad }), (e) => e instanceof BadLogLevel
      && e.message === `error: invalid value '${safeText(bad)}' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace`, bad);
  }
  assert.deepEqual(parseCommandLine(['run', '--help'], { GATEWAY_LOG: 'bad' }), { help: true }, 'not for --help');
  assert.deepEqual(parseCommandLine(['run', '-V'], { GATEWAY_LOG: 'bad' }), { version: true }, 'not for --version');
  assert.throws(() => parseCommandLine(['run'], { GATEWAY_LOG: 'bad', GATEWAY_PORT: 'x' }), BadLogLevel, 'before every other variable');
  assert.throws(() => parseCommandLine(['run', '--port', 'x'], { GATEWAY_LOG: 'bad' }), UsageError, 'the command line is read before the environment');
});

test('DOOR-7: --allow-host takes a name or address (its port ignored); anything else is a usage error', () => {
  const s = parseCommandLine(['run', '--allow-host', 'GW.example.:443', '--allow-host', '[::1]:8', '--allow-host', '[::2]'], {}).settings;
  assert.deepEqual(s.allowedHosts, [{ name: 'gw.example' }, { address: '::1', family: 6 }, { address: '::2', family: 6 }]);
  assert.deepEqual(parseCommandLine(['run'], { GATEWAY_ALLOW_HOSTS: 'a.example, b.example' }).settings.allowedHosts, [{ name: 'a.example' }, { name: 'b.example' }]);
  for (const bad of ['a b', 'a:99999', 'http://a', '::1', '::ffff:1.2.3.4', 'a/b', '[127.0.0.1]', 'a\u00a0']) {
    assert.throws(() => parseCommandLine(['run', '--allow-host', bad], {}), /for '--allow-host <HOST>'/, bad);
  }
});

test('DOOR-7 FUZZ-1: any Host value is judged 400, 421 or served, never an exception', () => {
  const bound = { address: '127.0.0.1', family: 4 };
  const r = rng(21);
  const alphabet = 'aZ09.-_:[]%@ \t/\x00\xff';
  for (let i = 0; i < 5000; i++) {
    const value = Array.from({ length: r(24) }, () => alphabet[r(alphabet.length)]).join('');
    const verdict = checkHost([value], '1.1', bound, []);
    assert.ok(verdict === null || verdict === 400 || verdict === 421, JSON.stringify(value));
    if (verdict === null) assert.notEqual(parseHostValue(value), null);
  }
  assert.equal(checkHost([], '1.1', bound, []), 400);
  assert.equal(checkHost([], '1.0', bound, []), null);
  assert.equal(checkHost(['a', 'a'], '1.1', bound, [{ name: 'a' }]), 400);
});

test('PROTO-3 PROTO-10: connect params have exactly the types of the table; ids are non-empty strings or null', () => {
  const first = (text) => new Session(gateway).onMessage(Buffer.from(text));
  const client = { id: 'i', version: '1', platform: 'p', mode: 'm' };
  const malformed = [
    { minProtocol: 4.5 }, { minProtocol: '4' }, { minProtocol: -1 }, { minProtocol: 4294967296 }, { maxProtocol: null },
    { client: null }, { client: { ...client, id: 1 } }, { client: { ...client, mode: undefined } }, { client: { ...client, displayName: 7 } },
    { role: 7 }, { scopes: null }, { scopes: ['a', 1] }, { scopes: 'a' }, { auth: [] }, { auth: 'x' }, { auth: { token: 7 } },
  ];
  for (const over of malformed) {
    const out = first(connect(over));
    assert.deepEqual(out.close, [1008, 'invalid connect params'], JSON.stringify(over));
    assert.match(out.send[0].error.message, /^invalid connect params: /);
  }
  for (const raw of ['4.0', '4e0', '0.4e1', '4E0']) {
    assert.deepEqual(first(connect().replace('"minProtocol":4', `"minProtocol":${raw}`)).close, [1008, 'invalid connect params'], raw);
  }
  assert.deepEqual(first('{"type":"req","id":"c","method":"connect"}').close, [1008, 'invalid connect params'], 'params missing');
  assert.equal(first(connect({ minProtocol: 0, maxProtocol: 4294967295 })).send[0].payload.type, 'hello-ok');
  assert.equal(first(connect({ minProtocol: 5, maxProtocol: 4 })).send[0].error.code, 'PROTOCOL_MISMATCH', 'an empty range');
  for (const auth of [undefined, null, {}, { token: null }, { token: '' }]) {
    assert.equal(first(connect({ auth })).send[0].error.code, 'AUTH_TOKEN_MISSING', JSON.stringify(auth));
  }
  const s = new Session(gateway);
  const hello = s.onMessage(Buffer.from(connect({ role: null, client: { ...client, deviceFamily: null, instanceId: 'x', caps: [1] }, caps: {} }))).send[0];
  assert.deepEqual(hello.payload.auth, { role: 'operator', scopes: [] });
  assert.deepEqual(s.client.client, { ...client, instanceId: 'x' }, 'the seven fields, optional ones only when strings');
  const dup = first('{"type":"req","id":"c","method":"connect","params":{"minProtocol":9,"maxProtocol":4}}'.replace('"maxProtocol":4', '"maxProtocol":4,"minProtocol":4'));
  assert.notEqual(dup.send[0].error && dup.send[0].error.code, 'PROTOCOL_MISMATCH', 'the last of two keys counts');
  for (const id of ['""', '7', 'null']) {
    const out = first(`{"type":"req","id":${id},"method":"connect","params":{}}`);
    assert.deepEqual([out.send[0].id, out.close], [null, [1008, 'invalid handshake: first request must be connect']], id);
  }
});

test('PROTO-16 FUZZ-1: the reader closes 1002 on bad close frames, 1007 on text that is not UTF-8, never on binary', () => {
  const one = (bytes) => {
    const reader = new FrameReader();
    reader.push(bytes);
    return reader.next(65536);
  };
  for (const code of [999, 1004, 1005, 1006, 1014, 1015, 2999, 5000]) {
    assert.equal(one(masked(8, Buffer.from([code >> 8, code & 255]))).code, 1002, String(code));
  }
  for (const code of [1000, 1003, 1007, 1013, 3000, 4999]) {
    assert.deepEqual(one(masked(8, Buffer.from([code >> 8, code & 255]))), { kind: 'close', code }, String(code));
  }
  assert.deepEqual(one(masked(8, Buffer.alloc(0))), { kind: 'close', code: null });
  assert.equal(one(masked(8, Buffer.from([3, 232, 0xff]))).code, 1002, 'a reason that is not UTF-8');
  assert.equal(one(masked(1, Buffer.from([0xc3]))).code, 1007);
  assert.equal(one(masked(2, Buffer.from([0xc3]))).kind, 'message');
  const split = new FrameReader();
  split.push(Buffer.concat([masked(1, Buffer.from([0xc3]), { fin: false }), masked(0, Buffer.from([0xa9]))]));
  assert.equal(split.next(65536).data.toString(), 'é', 'UTF-8 is judged after reassembly');
});

test('OPS-9: text from another process is escaped as ps and Rust do, and cut with a marker', () => {
  assert.equal(safeText('a\nb\rc\td\\e\x1b[2J\x7f\u0085'), 'a\\nb\\rc\\td\\\\e\\x1b[2J\\x7f\\u{85}');
  assert.equal(safeText('\u200b\u202e\u2066\ufeffok é'), '\\u{200b}\\u{202e}\\u{2066}\\u{feff}ok é');
  assert.equal(safeText(Buffer.from([0x66, 0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80])), 'f\\xff\\xc3(\\xed\\xa0\\x80');
  assert.equal(safeText('x'.repeat(600), 512), `${'x'.repeat(512)} [... 88 more characters]`);
  assert.equal(safeText('\n'.repeat(300), 512), `${'\\n'.repeat(256)} [... 88 more characters]`, 'counted after escaping');
  assert.equal(joinArguments(Buffer.from('node\0a\nb\0\0')).toString(), 'node a\nb');
  assert.equal(shownName('v1\n  holder is a live gateway'), 'v1\\n  holder is a live gateway');
  assert.equal(shownName(null), '(none)');
  assert.equal(shownName('p'.repeat(70)), `${'p'.repeat(64)} [... 6 more characters]`);
  const r = rng(9);
  for (let i = 0; i < 3000; i++) {
    const out = safeText(Buffer.from(Array.from({ length: r(40) }, () => r(256))));
    assert.ok(!/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/u.test(out), JSON.stringify(out));
  }
});

test('DOOR-8: the throttle looks at no more than 22 + 5·t failures in any t seconds; turns are 200 ms apart', () => {
  const r = rng(8);
  for (let run = 0; run < 50; run++) {
    const throttle = new Throttle(0);
    const looked = [];
    const pending = [];
    let now = 0;
    const look = (at) => {
      looked.push(at);
      throttle.failed(at);
    };
    for (let step = 0; step < 400; step++) {
      now += r(3) === 0 ? r(400) : r(5);
      pending.sort((a, b) => a - b);
      while (pending.length && pending[0] <= now) look(pending.shift()); // turns come in time order
      const arrivals = 1 + r(4); // any number of attacker connections
      for (let k = 0; k < arrivals; k++) {
        const wait = throttle.wait(now);
        if (wait === 0) look(now);
        else pending.push(now + wait);
      }
    }
    for (let i = 0; i < looked.length; i++) {
      for (let j = i; j < looked.length; j++) {
        const t = (looked[j] - looked[i]) / 1000;
        assert.ok(j - i + 1 <= 22 + 5 * t, `run ${run}: ${j - i + 1} failures looked at in ${t} s`);
      }
    }
  }
  const quiet = new Throttle(0);
  for (let i = 0; i < 20; i++) assert.equal(quiet.wait(0), 0, 'the first 20 are not held');
  for (let i = 0; i < 20; i++) quiet.failed(0);
  assert.deepEqual([quiet.wait(0), quiet.wait(0), quiet.wait(0)], [0, 200, 400], 'full: turns 200 ms apart from the start time');
  assert.equal(quiet.wait(500), 0, 'drained below 20: a newcomer goes at once, the turns handed out still stand');
  assert.equal(quiet.wait(10000), 0, 'drained: free again');
});

test('DOOR-7: the Host grammar of protocol.md: no label or length rules, an empty port, 127.0.0.1. an address, mapped addresses as IPv4', () => {
  const loop = { address: '127.0.0.1', family: 4 };
  const judge = (value, bound = loop, allowed = []) => checkHost([value], '1.1', bound, allowed);
  for (const name of ['a..b', '-a', '.', 'localhost..', '127.1', '1.2.3.4.5', '0177.0.0.1', 'x'.repeat(300), '_a_', 'a-.b']) {
    assert.equal(judge(name), 421, `${name}: a well-formed name, not this host's`);
    assert.equal(judge(name, loop, [parseHostValue(name)]), null, `${name}: served when allowed`);
  }
  assert.deepEqual(parseHostValue('.'), { name: '.' }, 'a lone dot stays (removing it would leave nothing)');
  for (const served of ['localhost:', 'localhost:00080', 'LOCALHOST.', '127.0.0.1.', '127.0.0.1.:80', '[::1]:', '[::ffff:127.0.0.1]', '127.9.9.9']) {
    assert.equal(judge(served), null, served);
  }
  assert.deepEqual(parseHostValue('127.0.0.1.'), { address: '127.0.0.1', family: 4 }, 'an IPv4 address after one trailing dot');
  for (const malformed of ['localhost:000080', 'localhost:+80', 'localhost:99999', '::1', '[127.0.0.1]', '[fe80::1%25lo]', 'a%b', 'a+b', 'a/b', 'a b', '\u00a0localhost', 'localhost\u00a0', 'l\u00f6', '']) {
    assert.equal(judge(malformed), 400, JSON.stringify(malformed));
  }
  assert.equal(judge(' \tlocalhost\t '), null, 'surrounding spaces and tabs only are removed');
  const bound = { address: '192.0.2.8', family: 4 };
  assert.equal(judge('[::ffff:192.0.2.8]:80', bound), null, 'a mapped address is compared as its IPv4 address: the bound one');
  assert.equal(judge('[::ffff:c000:209]', { address: '198.51.100.1', family: 4 }, [parseHostValue('192.0.2.9')]), null, 'and an allowed one');
  assert.equal(judge('[::ffff:192.0.2.9]', bound), 421);
  assert.equal(judge('[2001:db8:0::5]', loop, [parseHostValue('[2001:DB8::5]')]), null, 'addresses compared as addresses');
  assert.equal(judge('[2001:db8::5]', { address: '0.0.0.0', family: 4 }), null, 'a wildcard serves every address of either family');
  assert.equal(judge('192.0.2.8', { address: '::', family: 6 }), null);
  assert.equal(judge('gw.example', { address: '0.0.0.0', family: 4 }), 421, 'but not names');
});

test('DOOR-7 SRV-3: header values lose surrounding spaces and tabs only; a value that is not UTF-8 is 400', () => {
  const head = (host) => parseHead(Buffer.concat([Buffer.from('GET /healthz HTTP/1.1\r\nHost:'), host, Buffer.from('\r\n\r\n')]));
  assert.deepEqual(head(Buffer.from(' \t localhost \t')).request.headers.get('host'), ['localhost']);
  assert.deepEqual(head(Buffer.from('\u00a0localhost', 'utf8')).request.headers.get('host'), ['\u00a0localhost'], 'a no-break space stays');
  assert.deepEqual(head(Buffer.from([0x6c, 0xff])), { status: 400 }, 'not UTF-8');
  const gw = { settings: { host: { address: '127.0.0.1', family: 4 }, allowedHosts: [] }, shuttingDown: false, health: () => ({}), originAllowed: () => true };
  assert.equal(route(head(Buffer.from('\u00a0localhost', 'utf8')).request, gw).status, 400, 'a no-break space makes Host malformed');
  const upgrade = (key) => parseHead(Buffer.from(`GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`, 'utf8')).request;
  assert.equal(route(upgrade('AAAAAAAAAAAAAAAAAAAAAA==\u00a0'), gw).status, 400, 'the key is trimmed of spaces and tabs only');
  assert.deepEqual(route(upgrade('AAAAAAAAAAAAAAAAAAAAAA==\t'), gw), { upgrade: 'AAAAAAAAAAAAAAAAAAAAAA==' });
});

test('CLI-3 DOOR-3 DOOR-7: list items are split at commas, trimmed of spaces and tabs, empty ones skipped, in flags and variables alike', () => {
  const settings = (args, env = {}) => parseCommandLine(['run', ...args], env).settings;
  assert.deepEqual(settings(['--allow-host', ' a.example ,, [::1]:8,\t', '--allow-host', 'b']).allowedHosts,
    [{ name: 'a.example' }, { address: '::1', family: 6 }, { name: 'b' }]);
  assert.deepEqual(settings([], { GATEWAY_ALLOW_HOSTS: ' gw.example ,,' }).allowedHosts, [{ name: 'gw.example' }]);
  assert.deepEqual(settings(['--allow-origin', 'https://A.example/, \thttp://b.example ']).allowedOrigins, ['https://a.example', 'http://b.example']);
  assert.deepEqual(settings([], { GATEWAY_ALLOW_ORIGINS: 'https://a.example,,' }).allowedOrigins, ['https://a.example']);
  for (const empty of [['--allow-origin', ''], ['--allow-origin', ' , '], ['--allow-origin=']]) {
    assert.deepEqual(settings(empty).allowedOrigins, [], `${empty}: no origin, not the empty origin`);
  }
  assert.deepEqual(settings([], { GATEWAY_ALLOW_ORIGINS: '' }).allowedOrigins, []);
  assert.deepEqual(settings(['--allow-origin', ''], { GATEWAY_ALLOW_ORIGINS: 'https://a.example' }).allowedOrigins, [], 'a given flag: its variable is not looked at');
  assert.throws(() => settings(['--allow-host', 'b,a\u00a0']), UsageError, 'only spaces and tabs are trimmed');
});

test('DOOR-3: an empty Origin gets 403 whatever the lists; origins lose surrounding spaces and tabs only', () => {
  const { Gateway } = require('../lib/gateway');
  const gw = (args) => ({ originAllowed: (o) => Gateway.prototype.originAllowed.call({ settings: parseCommandLine(['run', ...args], {}).settings }, o) });
  for (const args of [[], ['--allow-origin', ''], ['--allow-origin', ',https://a.example']]) {
    assert.equal(gw(args).originAllowed(''), false, JSON.stringify(args));
  }
  const g = gw(['--allow-origin', 'https://a.example']);
  assert.equal(g.originAllowed(' HTTPS://A.example// \t'), true);
  assert.equal(g.originAllowed('\u00a0https://a.example'), false, 'a no-break space is not trimmed');
  assert.equal(normalOrigin('\u00a0x\u00a0'), '\u00a0x\u00a0');
});

test('CLI-2: the command line read from left to right: --help/--version end it, a bad flag or value before them wins', () => {
  const read = (...args) => parseCommandLine(['run', ...args], {});
  assert.deepEqual(read('--help', '--port', 'abc'), { help: true });
  assert.deepEqual(read('--version', '--bogus'), { version: true });
  for (const before of [['--port', 'abc'], ['--bogus'], ['--port', '1', '--port', '1'], ['-p', '-1'], ['--allow-host', '::1'], ['--token', '-abc']]) {
    for (const info of ['--help', '-h', '--version', '-V']) {
      assert.throws(() => read(...before, info), UsageError, `${before} ${info}`);
    }
  }
  assert.deepEqual(parseCommandLine(['run', '-h'], { GATEWAY_PROFILE: 'work', GATEWAY_PORT: 'x' }), { help: true }, 'no variable beats --help');
});

test('CLI-2: -p takes -pN and -p=N; a value beginning with - must follow = (but --port takes a negative number as a bad value)', () => {
  const port = (...args) => parseCommandLine(['run', ...args], {}).settings.port;
  assert.deepEqual([port('-p80'), port('-p=80'), port('-p', '80'), port('--port=80'), port('--port', '+80')], [80, 80, 80, 80, 80]);
  for (const bad of [['-p'], ['-p='], ['-pabc'], ['-p=-1'], ['-p80', '--port', '80']]) {
    assert.throws(() => port(...bad), UsageError, String(bad));
  }
  assert.throws(() => port('--port', '-1'), (e) => e instanceof UsageError && e.message.startsWith("invalid value '-1' for '--port <PORT>'"));
  assert.throws(() => port('-p', '-1'), (e) => e instanceof UsageError && e.message.startsWith("invalid value '-1' for '--port <PORT>'"));
  assert.throws(() => parseCommandLine(['run', '--token', '-abc'], {}), (e) => e instanceof UsageError && e.message.includes("unexpected argument '-abc'"));
  assert.throws(() => parseCommandLine(['run', '--token', '--port', '1'], {}), UsageError, 'a flag is not a value');
  assert.equal(parseCommandLine(['run', '--token=-abc'], {}).settings.token, '-abc');
  assert.equal(parseCommandLine(['run', '--token', 'a-b'], {}).settings.token, 'a-b');
  assert.throws(() => parseCommandLine(['run', '-x'], {}), UsageError);
});

test('CLI-3: a port without profiles refuses a set GATEWAY_PROFILE of any value, naming it', () => {
  for (const profile of ['', 'work', 'default', ' ']) {
    assert.throws(() => parseCommandLine(['run', '--port', '0'], { GATEWAY_PROFILE: profile }),
      (e) => e instanceof UsageError && e.message.includes("'GATEWAY_PROFILE'"), JSON.stringify(profile));
  }
  assert.throws(() => parseCommandLine(['run', '--profile', 'work'], {}), UsageError, '--profile is an unknown flag');
});

test('PROTO-3: minProtocol and maxProtocol take digits alone: -0 is malformed params', () => {
  const first = (text) => new Session(gateway).onMessage(Buffer.from(text));
  for (const raw of ['-0', '-0.0', '-0e0']) {
    for (const field of ['minProtocol', 'maxProtocol']) {
      const over = field === 'minProtocol' ? `"minProtocol":${raw}` : `"maxProtocol":${raw}`;
      const text = connect({ minProtocol: 0, maxProtocol: 4 }).replace(field === 'minProtocol' ? '"minProtocol":0' : '"maxProtocol":4', over);
      assert.deepEqual(first(text).close, [1008, 'invalid connect params'], `${field} ${raw}`);
    }
  }
  assert.equal(first(connect({ minProtocol: 0, maxProtocol: 4 })).send[0].payload.type, 'hello-ok', '0 written as 0 is fine');
});

test('DOOR-5: token files and the stored token are trimmed of Unicode White_Space (not JavaScript trim())', () => {
  const { trimWhiteSpace } = require('../lib/token');
  assert.equal(trimWhiteSpace('\u0085\u3000 tok \t\n\u2029'), 'tok', 'NEL is White_Space');
  assert.equal(trimWhiteSpace('\ufefftok\ufeff'), '\ufefftok\ufeff', 'U+FEFF is not');
  assert.equal(trimWhiteSpace('\u200btok'), '\u200btok', 'nor U+200B');
});
