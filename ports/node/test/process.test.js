'use strict';
// The port's own black-box tests for what the conformance runner cannot check from a command template
// (it reports these rows n/a): REL-3, CLI-3, DOOR-2, DOOR-5, DOOR-6, SRV-3's other statuses, CLI-4's `run`, and
// the embeddable lock (ERR-1, ERR-2 through the API).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');
const { acquireGatewayLock, GatewayLockError } = require('..');

const stop = async (g) => {
  g.child.kill('SIGTERM');
  return h.within(g.exited, 'graceful exit');
};

test('ERR-1 ERR-2 LOCK-4: the embeddable lock resolves to the listener or rejects with the exact GatewayLockError', async () => {
  const server = await acquireGatewayLock('localhost', 0);
  const { port, address } = server.address();
  assert.equal(address, '127.0.0.1');
  try {
    const held = await acquireGatewayLock('127.0.0.1', port).then(() => null, (e) => e);
    assert.ok(held instanceof GatewayLockError);
    assert.equal(String(held), `GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:${port}`);
    assert.equal(held.exitCode, 3);
    const other = await acquireGatewayLock('192.0.2.1', port).then(() => null, (e) => e);
    assert.ok(other instanceof GatewayLockError);
    assert.ok(String(other).startsWith(`GatewayLockError: failed to bind gateway socket on ws://192.0.2.1:${port}: `));
    assert.equal(other.exitCode, 4);
    assert.ok(await h.canBind(port, '::1'), 'localhost must not hold [::1] too');
  } finally {
    server.close();
  }
});

test('REL-3: a child of the holder does not keep the lock after the holder is killed', async (t) => {
  const helper = `
    const { acquireGatewayLock } = require(${JSON.stringify(path.join(__dirname, '..'))});
    acquireGatewayLock('127.0.0.1', 0).then((server) => {
      const child = require('node:child_process').spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
      process.stdout.write(server.address().port + ' ' + child.pid + '\\n');
    });`;
  const holder = h.track(spawn(process.execPath, ['-e', helper], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const line = await h.within(new Promise((resolve) => holder.stdout.once('data', (d) => resolve(String(d)))), 'helper');
  const [port, childPid] = line.trim().split(' ').map(Number);
  t.after(() => {
    try {
      process.kill(childPid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  assert.equal(await h.canBind(port), false, 'the helper holds the port');
  const gone = new Promise((resolve) => holder.on('exit', resolve));
  holder.kill('SIGKILL');
  await h.within(gone, 'helper killed');
  process.kill(childPid, 0); // the child still lives
  assert.ok(await h.canBind(port), 'the child must not inherit the listener');
});

test('CLI-3: GATEWAY_PORT and GATEWAY_HOST set the port and host when the flags are absent', async () => {
  const port = await h.freePort();
  const g = h.startGateway(['run', '--token', 't'], { GATEWAY_PORT: String(port), GATEWAY_HOST: 'localhost' });
  assert.equal(await h.within(g.ready, 'ready line'), `listening on ws://127.0.0.1:${port}`);
  assert.equal((await stop(g)).code, 0);
  const flag = h.startGateway(['run', '--port', '0', '--token', 't'], { GATEWAY_PORT: String(port) });
  assert.notEqual(await h.within(flag.ready, 'ready line'), `listening on ws://127.0.0.1:${port}`, 'a flag wins');
  await stop(flag);
});

test('DOOR-2: a non-loopback host without a token exits 7 before the bind, even when the port is held', async () => {
  const port = await h.freePort();
  const free = await h.runGateway(['run', '--host', '0.0.0.0', '--port', String(port)]);
  assert.deepEqual([free.code, free.stdout, free.stderr], [7, '', 'Refusing to bind gateway to 0.0.0.0 without auth.\n']);
  assert.ok(await h.canBind(port), 'nothing was left listening');
  const holder = h.startGateway(['run', '--port', String(port), '--token', 't']);
  await h.within(holder.ready, 'ready line');
  const held = await h.runGateway(['run', '--host', '::', '--port', String(port)]);
  assert.deepEqual([held.code, held.stderr], [7, 'Refusing to bind gateway to :: without auth.\n']);
  await stop(holder);
});

test('DOOR-5: token file errors exit 1 after the bind', async (t) => {
  const s = h.scratch();
  t.after(s.remove);
  const missing = path.join(s.dir, 'missing');
  const r1 = await h.runGateway(['run', '--port', '0', '--token-file', missing]);
  assert.equal(r1.code, 1);
  assert.ok(r1.stderr.startsWith(`cannot read token file ${missing}: `), r1.stderr);
  const blank = path.join(s.dir, 'blank');
  fs.writeFileSync(blank, ' \n\t\n');
  const r2 = await h.runGateway(['run', '--port', '0', '--token-file', blank]);
  assert.deepEqual([r2.code, r2.stderr], [1, `token file ${blank} is empty\n`]);
});

test('DOOR-5 DOOR-6: one generated token per profile, stored 0600, reused on any port, never printed', async (t) => {
  const s = h.scratch();
  t.after(s.remove);
  const g = h.startGateway(['run', '--port', '0'], { XDG_STATE_HOME: s.dir });
  await h.within(g.ready, 'ready line');
  const file = path.join(s.dir, 'gateway-lock', 'token');
  const token = fs.readFileSync(file, 'utf8');
  assert.match(token, /^[0-9a-f]{64}\n$/, '64 lower-case hex characters and one newline');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
  await stop(g);
  assert.ok(g.stderr().includes(`gateway: no token given; generated one and stored it in ${file} (mode 0600)\n`), g.stderr());
  assert.ok(!g.stderr().includes(token.trim()) && !g.stdout().includes(token.trim()), 'the token is never printed');
  fs.chmodSync(file, 0o644);
  const again = h.startGateway(['run', '--port', '0'], { XDG_STATE_HOME: s.dir });
  await h.within(again.ready, 'ready line');
  await stop(again);
  assert.ok(again.stderr().includes(`gateway: no token given; using the one stored in ${file} (mode 0600)\n`), again.stderr());
  assert.equal(fs.readFileSync(file, 'utf8'), token, 'the same token, whatever the port');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'its mode set to 0600 again');
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['token'], 'one file, no temporary left');
  fs.writeFileSync(file, ' \n');
  const blank = await h.runGateway(['run', '--port', '0'], { XDG_STATE_HOME: s.dir });
  assert.deepEqual([blank.code, blank.stderr], [1, `cannot store generated token in ${file}: the stored token is empty\n`], 'the exact line (errors.md)');
  const home = h.startGateway(['run', '--port', '0'], { HOME: s.dir, XDG_STATE_HOME: 'relative' });
  await h.within(home.ready, 'ready line');
  await stop(home);
  assert.ok(fs.existsSync(path.join(s.dir, '.local', 'state', 'gateway-lock', 'token')), 'a relative XDG_STATE_HOME is not used');
  const nowhere = await h.runGateway(['run', '--port', '0'], { HOME: '' });
  assert.deepEqual([nowhere.code, nowhere.stdout, nowhere.stderr], [1, '', 'no token given and nowhere private to store one: neither XDG_STATE_HOME nor HOME is set (give --token or --token-file)\n']);
});

test('DOOR-5: a refused instance never touches the token file', async (t) => {
  const s = h.scratch();
  t.after(s.remove);
  const holder = h.startGateway(['run', '--port', '0', '--token', 't']);
  const port = Number((await h.within(holder.ready, 'ready line')).split(':').pop());
  const refused = await h.runGateway(['run', '--port', String(port)], { XDG_STATE_HOME: s.dir });
  assert.ok([3, 5].includes(refused.code));
  assert.deepEqual(fs.readdirSync(s.dir), [], 'nothing was created');
  await stop(holder);
});

test('SRV-3: bad HTTP gets 400, 404, 405, 426, 431, and the gateway keeps serving', async () => {
  const g = h.startGateway(['run', '--port', '0', '--token', 't']);
  const port = Number((await h.within(g.ready, 'ready line')).split(':').pop());
  const status = async (bytes) => (await h.rawHttp(port, bytes)).split('\r\n')[0];
  const host = `Host: 127.0.0.1:${port}\r\n`;
  assert.equal(await status('nonsense\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.equal(await status(`GET /nope HTTP/1.1\r\n${host}\r\n`), 'HTTP/1.1 404 Not Found');
  assert.equal(await status(`POST /healthz HTTP/1.1\r\n${host}\r\n`), 'HTTP/1.1 405 Method Not Allowed');
  assert.equal(await status(`GET / HTTP/1.1\r\n${host}\r\n`), 'HTTP/1.1 426 Upgrade Required');
  assert.equal(await status(`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}\r\n\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
  assert.equal(await status(`GET / HTTP/1.1\r\n${'A: b\r\n'.repeat(33)}\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
  const head = await h.rawHttp(port, `HEAD /healthz HTTP/1.1\r\n${host}\r\n`);
  assert.ok(head.startsWith('HTTP/1.1 200 OK') && head.endsWith('\r\n\r\n'), 'HEAD has no body');
  const body = (await h.request(port, '/healthz')).split('\r\n\r\n')[1];
  assert.equal(JSON.parse(body).status, 'live');
  assert.equal((await stop(g)).code, 0);
});

test('CLI-4: `run` whose ready line cannot be written keeps serving', async () => {
  const port = await h.freePort(); // chosen by the OS, so inside the ephemeral range: a warning follows the bind
  const child = spawn(process.execPath, [h.GATEWAY, 'run', '--port', String(port), '--token', 't'], { stdio: ['ignore', 'pipe', 'pipe'], env: h.childEnv() });
  h.track(child);
  child.stdout.destroy(); // nobody reads: the write of the ready line fails with EPIPE
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  await h.within(new Promise((resolve) => child.stderr.once('data', resolve)), 'the warning after the bind');
  const answer = await h.request(port, '/healthz');
  assert.ok(answer.startsWith('HTTP/1.1 200 OK'), answer);
  child.kill('SIGTERM');
  assert.equal(await h.within(exited, 'exit'), 0);
});

test('LOCK-4 DOOR-2: an IPv4-mapped host is IPv6 and cannot be bound (exit 4); a mapped non-loopback one needs a token (exit 7)', async () => {
  const mapped = await h.runGateway(['run', '--host', '[::FFFF:7F00:1]', '--port', '0']);
  assert.equal(mapped.code, 4);
  assert.ok(mapped.stderr.startsWith('GatewayLockError: failed to bind gateway socket on ws://[::ffff:127.0.0.1]:0: '), mapped.stderr);
  assert.equal(mapped.stdout, '');
  const other = await h.runGateway(['run', '--host', '::ffff:10.0.0.1', '--port', '0']);
  assert.deepEqual([other.code, other.stderr], [7, 'Refusing to bind gateway to ::ffff:10.0.0.1 without auth.\n']);
  const wildcard = await acquireGatewayLock('::', 0);
  try {
    const port = wildcard.address().port;
    const g = h.startGateway(['run', '--host', 'LOCALHOST', '--port', String(port), '--token', 't']);
    assert.equal(await h.within(g.ready, 'ready line'), `listening on ws://127.0.0.1:${port}`, ':: is IPv6 only');
    await stop(g);
  } finally {
    wildcard.close();
  }
});

test('CLI-3: an empty GATEWAY_PORT is a usage error, not the default port; GATEWAY_LOG prints its one exact line', async () => {
  const empty = await h.runGateway(['run', '--token', 't'], { GATEWAY_PORT: '' });
  assert.equal(empty.code, 2);
  assert.ok(empty.stderr.startsWith("error: invalid value '' for '--port <PORT>'"), empty.stderr);
  const log = await h.runGateway(['run', '--port', '0', '--token', 't'], { GATEWAY_LOG: 'verbose\n' });
  assert.deepEqual([log.code, log.stdout, log.stderr],
    [2, '', "error: invalid value 'verbose\\n' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace\n"]);
});

test('OPS-9: a refused instance shows a hostile holder\'s command line escaped, on one line', async () => {
  const script = "const s = require('net').createServer(); s.listen(0, '127.0.0.1', () => console.log(s.address().port));";
  const hostile = h.track(spawn(process.execPath, ['-e', script, 'x\n  holder is a live gateway: profile p', '\x1b[2J\u202e'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  const port = Number(await h.within(new Promise((resolve) => hostile.stdout.once('data', (d) => resolve(String(d).trim()))), 'holder'));
  try {
    const refused = await h.runGateway(['run', '--port', String(port), '--token', 't']);
    assert.equal(refused.code, 3);
    const lines = refused.stderr.split('\n');
    assert.equal(lines[0], `GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:${port}`);
    assert.ok(lines[1].startsWith(`  holder: pid ${hostile.pid} `), lines[1]);
    assert.ok(lines[1].endsWith(' x\\n  holder is a live gateway: profile p \\x1b[2J\\u{202e}'), lines[1]);
    assert.ok(!lines.slice(2).some((l) => l.startsWith('  holder is a live gateway')), 'no fake line');
  } finally {
    hostile.kill('SIGKILL');
  }
});

test('DOOR-6: two gateways starting at once without a token end up with the same stored token', async (t) => {
  const s = h.scratch();
  t.after(s.remove);
  for (let round = 0; round < 5; round++) {
    fs.rmSync(path.join(s.dir, 'gateway-lock'), { recursive: true, force: true });
    const both = [0, 1].map(() => h.startGateway(['run', '--port', '0'], { XDG_STATE_HOME: s.dir }));
    await Promise.all(both.map((g) => h.within(g.ready, 'ready line')));
    await Promise.all(both.map(stop));
    const lines = both.map((g) => g.stderr());
    assert.equal(lines.filter((l) => l.includes('generated one and stored it in')).length, 1, lines.join(''));
    assert.equal(lines.filter((l) => l.includes('using the one stored in')).length, 1, lines.join(''));
    assert.deepEqual(fs.readdirSync(path.join(s.dir, 'gateway-lock')), ['token'], 'no temporary file left');
  }
});

test('DOOR-7: on the port, Host names without label or length rules get 421, an empty port and 127.0.0.1. are served', async () => {
  const g = h.startGateway(['run', '--port', '0', '--token', 't', '--allow-host', ' a..b , ,[::ffff:192.0.2.7]']);
  const port = Number((await h.within(g.ready, 'ready line')).split(':').pop());
  const status = async (value) => (await h.rawHttp(port, `GET /healthz HTTP/1.1\r\nHost:${value}\r\n\r\n`)).split('\r\n')[0];
  for (const name of ['-a', '.', 'x'.repeat(300), 'evil.example']) assert.equal(await status(name), 'HTTP/1.1 421 Misdirected Request', name);
  for (const served of ['localhost:', '127.0.0.1.', 'a..b:1', '192.0.2.7', '[::ffff:127.0.0.1]', ' \tlocalhost\t']) {
    assert.equal(await status(served), 'HTTP/1.1 200 OK', served);
  }
  assert.equal(await status('\u00a0localhost'), 'HTTP/1.1 400 Bad Request', 'a no-break space is not trimmed');
  assert.equal((await stop(g)).code, 0);
});

test('CLI-2 CLI-3: `run --port abc --help` and a set GATEWAY_PROFILE are usage errors (exit 2); `run --help --port abc` is help', async () => {
  const bad = await h.runGateway(['run', '--port', 'abc', '--help']);
  assert.deepEqual([bad.code, bad.stdout], [2, '']);
  assert.ok(bad.stderr.startsWith("error: invalid value 'abc' for '--port <PORT>'"), bad.stderr);
  const help = await h.runGateway(['run', '--help', '--port', 'abc'], { GATEWAY_PROFILE: 'work' });
  assert.equal(help.code, 0);
  assert.ok(help.stdout.length > 0);
  for (const profile of ['work', '']) {
    const r = await h.runGateway(['run', '--port', '0', '--token', 't'], { GATEWAY_PROFILE: profile });
    assert.deepEqual([r.code, r.stdout], [2, ''], JSON.stringify(profile));
    assert.ok(r.stderr.startsWith('error: ') && r.stderr.split('\n')[0].includes('GATEWAY_PROFILE'), r.stderr);
  }
});
