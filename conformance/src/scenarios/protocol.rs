//! The protocol on the held port (`spec/protocol.md`, PROTO-*), when claimed with `--token`: the
//! challenge, `connect` and `hello-ok`, refusals with their close codes, frame limits, methods,
//! readiness probes, and the shutdown event; the WebSocket strictness of PROTO-15 and PROTO-16.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use gateway_harness::net::{http_raw, loopback, request, Answer};
use gateway_harness::spec::{self, close};
use gateway_harness::ws::{self, connect_frame, request_frame, Ws};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use super::{Ctx, Table};
use crate::report::{Check, Verdict};
use crate::subject::Running;

pub const SCENARIOS: Table = &[
    (&["PROTO-1", "PROTO-2", "PROTO-3", "PROTO-4", "PROTO-5", "PROTO-7", "PROTO-8", "PROTO-9", "PROTO-13", "PROTO-14"], protocol),
    (&["PROTO-15"], websocket_keys),
    (&["PROTO-16"], websocket_violations),
];

/// The rows this scenario judges (each fails as a knock-on when no instance starts).
const IDS: [&str; 10] = ["PROTO-1", "PROTO-2", "PROTO-3", "PROTO-4", "PROTO-5", "PROTO-7", "PROTO-8", "PROTO-9", "PROTO-13", "PROTO-14"];

/// Everything the protocol checks need: the instance, its address, the claimed token.
struct On<'a> {
    ctx: &'a Ctx<'a>,
    addr: SocketAddr,
    token: &'a str,
}

impl On<'_> {
    fn open(&self) -> Result<Ws, String> {
        ws::open(self.addr, None, self.ctx.settings.deadline)
    }
    fn handshake(&self, instance: &str) -> Result<(Ws, Value), String> {
        ws::handshake(self.addr, self.token, instance, self.ctx.settings.deadline)
    }
    fn http(&self, method: &str, path: &str) -> Result<Answer, String> {
        let text =
            http_raw(self.addr, request(method, self.addr, path).as_bytes(), self.ctx.settings.deadline).map_err(|e| e.to_string())?;
        Answer::parse(&text).ok_or(format!("{method} {path}: answer {text:?}"))
    }
}

fn protocol(ctx: &Ctx) {
    let Some(token) = ctx.settings.claims.token.as_deref() else { return };
    let port = ctx.port();
    let mut gw = match ctx.start(port) {
        Ok(gw) => gw,
        Err(why) => return IDS.iter().for_each(|id| ctx.record(id, Verdict::Fail, why.clone())),
    };
    let on = On { ctx, addr: loopback(port), token };
    ctx.check("PROTO-1", &challenge(&on));
    ctx.check("PROTO-2", &hello(&on, gw.pid()));
    first_frames(&on);
    mismatches(&on);
    bad_tokens(&on);
    frame_limits(&on);
    ctx.check("PROTO-8", &methods(&on, gw.pid(), port));
    probes(&on);
    let (shutdown, ready) = shutdown(&on, &mut gw);
    ctx.check("PROTO-9", &shutdown);
    ctx.check(
        "PROTO-13",
        &ready.unwrap_or_else(|| Err(format!("knock-on of PROTO-9 (before the probe: {})", shutdown.clone().err().unwrap_or_default()))),
    );
}

/// Checks a `connect.challenge` event (PROTO-1); returns its nonce.
fn challenge_nonce(frame: &Value) -> Result<String, String> {
    let nonce = frame["payload"]["nonce"].as_str().unwrap_or("");
    let uuid_v4 = uuid::Uuid::parse_str(nonce).is_ok_and(|u| u.get_version_num() == 4);
    let ts = frame["payload"]["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000);
    if frame["type"] == "event" && frame["event"] == "connect.challenge" && uuid_v4 && ts && frame.get("seq").is_none() {
        Ok(nonce.to_string())
    } else {
        Err(format!("first frame {frame}, want a connect.challenge event with a UUID v4 nonce, a ts in ms and no seq"))
    }
}

/// PROTO-1: the challenge first, a fresh nonce per connection.
fn challenge(on: &On) -> Check {
    let (mut a, mut b) = (on.open()?, on.open()?);
    let (na, nb) = (challenge_nonce(&ws::json(&mut a)?)?, challenge_nonce(&ws::json(&mut b)?)?);
    if na == nb {
        return Err(format!("two connections got the same nonce {na}"));
    }
    Ok("connect.challenge first, a fresh UUID v4 nonce per connection, ts".to_string())
}

/// PROTO-2: a connect offering 3..=4 with the token gets `hello-ok`: the fields the client sent
/// (`auth.scopes`) and those it did not (`server.host`, `server.pid`, a fresh `server.connId`).
fn hello(on: &On, pid: u32) -> Check {
    let mut ws = on.open()?;
    ws::json(&mut ws)?;
    ws::send(&mut ws, &connect_frame(3, 4, Some(on.token), "conformance"))?;
    let hello = ws::json(&mut ws)?;
    let p = &hello["payload"];
    let features = json!({"methods": spec::METHODS, "events": spec::EVENTS});
    let fields = [
        ("a response to connect-1 with ok true", hello["type"] == "res" && hello["id"] == "connect-1" && hello["ok"] == true),
        ("payload.type hello-ok", p["type"] == "hello-ok"),
        ("protocol 4", p["protocol"] == spec::PROTOCOL),
        ("server.version and server.connId strings", p["server"]["version"].is_string() && p["server"]["connId"].is_string()),
        ("server.host \"127.0.0.1\"", p["server"]["host"] == "127.0.0.1"),
        ("server.pid the gateway's", p["server"]["pid"] == pid),
        ("features", p["features"] == features),
        ("auth.role \"operator\"", p["auth"]["role"] == "operator"),
        ("auth.scopes as sent ([\"operator.read\"])", p["auth"]["scopes"] == json!(["operator.read"])),
        ("policy.maxPayload", p["policy"]["maxPayload"] == spec::MAX_PAYLOAD),
        ("policy.maxBufferedBytes", p["policy"]["maxBufferedBytes"] == spec::MAX_BUFFERED_BYTES),
        ("policy.tickIntervalMs", p["policy"]["tickIntervalMs"].is_u64()),
    ];
    let wrong: Vec<&str> = fields.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what).collect();
    if !wrong.is_empty() {
        return Err(format!("connect 3..=4 with the token (gateway pid {pid}): want {}; answered {hello}", wrong.join(", ")));
    }
    let (_, other) = on.handshake("conformance-2")?;
    if other["payload"]["server"]["connId"] == p["server"]["connId"] {
        return Err(format!("two connections got the same server.connId {}", p["server"]["connId"]));
    }
    Ok("connect 3..=4 with the token: hello-ok, protocol 4, server (a fresh connId), features, auth, policy".to_string())
}

/// Sends `first` (described by `what`) after the challenge; checks the error response (`code`, if any) and the close.
fn refused_frame(on: &On, what: &str, first: &str, error_code: Option<&str>, want: (u16, &str)) -> Check {
    let mut ws = on.open()?;
    ws::json(&mut ws)?;
    // The gateway may close before a large frame is written completely; the close is what counts.
    let sent = ws::send(&mut ws, first);
    let (frames, got) = ws::until_close(&mut ws).map_err(|e| format!("{what}: {e}, want close {} {:?}", want.0, want.1))?;
    if (got.0, got.1.as_str()) != want {
        let sent = sent.err().map(|e| format!(" (sending: {e})")).unwrap_or_default();
        return Err(format!("{what}: close {} {:?}, want {} {:?}{sent}", got.0, got.1, want.0, want.1));
    }
    if let Some(code) = error_code {
        let f = frames.first().cloned().unwrap_or(Value::Null);
        let ok = frames.len() == 1
            && f["type"] == "res"
            && f["ok"] == false
            && f["error"]["code"] == code
            && f["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
        if !ok {
            return Err(format!("{what}: frames {}, want one error response {code} with a message, then the close", Value::from(frames)));
        }
    }
    let code = error_code.map(|c| format!("{c}, ")).unwrap_or_default();
    Ok(format!("{what}: {code}close {} {:?}", want.0, want.1))
}

/// PROTO-3: anything but connect first; malformed connect params.
fn first_frames(on: &On) {
    let firsts = [
        ("health first", request_frame("a", "health")),
        ("not JSON first", "not json".to_string()),
        ("an event first", json!({"type": "event"}).to_string()),
    ];
    for (what, first) in firsts {
        on.ctx.check("PROTO-3", &refused_frame(on, what, &first, Some("INVALID_REQUEST"), close::FIRST_NOT_CONNECT));
    }
    let malformed = json!({"type": "req", "id": "c", "method": "connect", "params": {"minProtocol": 4}}).to_string();
    on.ctx.check("PROTO-3", &refused_frame(on, "malformed connect params", &malformed, Some("INVALID_REQUEST"), close::BAD_CONNECT_PARAMS));
}

/// PROTO-4: no common protocol version.
fn mismatches(on: &On) {
    for (min, max) in [(1, 3), (5, 6)] {
        let frame = connect_frame(min, max, Some(on.token), "conformance");
        let what = format!("protocols {min}..={max}");
        on.ctx.check("PROTO-4", &refused_frame(on, &what, &frame, Some("PROTOCOL_MISMATCH"), close::PROTOCOL_MISMATCH));
    }
}

/// PROTO-5: a wrong token (one character short or long), no token.
fn bad_tokens(on: &On) {
    let short: String = on.token.chars().take(on.token.chars().count().saturating_sub(1)).collect();
    let bad = [
        ("the token and one character more", Some(format!("{}x", on.token)), "AUTH_TOKEN_MISMATCH"),
        ("the token but its last character", Some(short), "AUTH_TOKEN_MISMATCH"),
        ("no token", None, "AUTH_TOKEN_MISSING"),
    ];
    for (what, token, code) in bad {
        let frame = connect_frame(4, 4, token.as_deref(), "conformance");
        on.ctx.check("PROTO-5", &refused_frame(on, what, &frame, Some(code), close::UNAUTHORIZED));
    }
}

/// PROTO-7: over 64 KiB before hello-ok (refused from the header); 100 KiB after is fine, over 1 MiB is not.
fn frame_limits(on: &On) {
    let over = " ".repeat(spec::MAX_PREAUTH_PAYLOAD + 1);
    on.ctx.check("PROTO-7", &refused_frame(on, "64 KiB + 1 before hello-ok", &over, None, close::TOO_LARGE));
    on.ctx.check("PROTO-7", &announced_only(on));
    on.ctx.check("PROTO-7", &after_hello(on));
}

/// 900 KiB announced before hello-ok, only 4 KiB of it sent: closed 1009 from the header.
fn announced_only(on: &On) -> Check {
    let what = "900 KiB announced before hello-ok, 4 KiB of it sent";
    let mut ws = on.open()?;
    ws::json(&mut ws)?;
    let mut partial = vec![0x81, 0x80 | 127];
    partial.extend_from_slice(&(900u64 * 1024).to_be_bytes());
    partial.extend_from_slice(&[0; 4]);
    partial.extend_from_slice(&[b' '; 4096]);
    ws.get_mut().write_all(&partial).map_err(|e| format!("send: {e}"))?;
    match ws::until_close(&mut ws) {
        Ok((_, (code, reason))) if (code, reason.as_str()) == close::TOO_LARGE => Ok(format!("{what}: close 1009 without the rest")),
        Ok((_, (code, reason))) => Err(format!("{what}: close {code} {reason:?}, want 1009 \"frame too large\" from the header")),
        Err(e) => Err(format!("{what}: {e}; want close 1009 \"frame too large\" from the header")),
    }
}

fn after_hello(on: &On) -> Check {
    let (mut ws, _) = on.handshake("conformance")?;
    let padded = json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "x".repeat(100 * 1024)}});
    ws::send(&mut ws, &padded.to_string())?;
    let answer = ws::json(&mut ws)?;
    if answer["id"] != "big" {
        return Err(format!("a 100 KiB request after hello-ok answered {answer}"));
    }
    let sent = ws::send(&mut ws, &" ".repeat(spec::MAX_PAYLOAD + 1));
    match ws::until_close(&mut ws)? {
        (_, (code, reason)) if (code, reason.as_str()) == close::TOO_LARGE => {
            Ok("after hello-ok: 100 KiB answered, 1 MiB + 1 closed 1009".to_string())
        }
        (_, (code, reason)) => Err(format!(
            "1 MiB + 1 after hello-ok: close {code} {reason:?}, want 1009 \"frame too large\" (send: {})",
            sent.err().unwrap_or_default()
        )),
    }
}

/// PROTO-8: the methods and their payloads; config.get never holds the token.
fn methods(on: &On, pid: u32, port: u16) -> Check {
    let (mut ws, _) = on.handshake("conformance-a")?;
    let (_other, _) = on.handshake("conformance-b")?;
    health_payload(&ws::call(&mut ws, "1", "health")?, pid, port)?;
    let url = spec::url("127.0.0.1", port);
    let status = ws::call(&mut ws, "2", "status")?;
    let s = &status["payload"];
    if status["ok"] != true || s["url"] != url.as_str() || s["listening"] != url.as_str() || s["pid"] != pid {
        return Err(format!("status answered {status}, want url and listening {url:?}, pid {pid}"));
    }
    let presence = ws::call(&mut ws, "3", "system-presence")?;
    let ids: Vec<&str> =
        presence["payload"].as_array().map(|l| l.iter().filter_map(|c| c["client"]["instanceId"].as_str()).collect()).unwrap_or_default();
    if presence["ok"] != true || !ids.contains(&"conformance-a") || !ids.contains(&"conformance-b") {
        return Err(format!("system-presence with two clients answered {presence}"));
    }
    let config = ws::call(&mut ws, "4", "config.get")?;
    if config["ok"] != true || config["payload"]["port"] != port || config["payload"]["auth"]["mode"] != "token" {
        return Err(format!("config.get answered {config}"));
    }
    if config.to_string().contains(on.token) {
        return Err("config.get contains the token".to_string());
    }
    let unknown = ws::call(&mut ws, "5", "no.such.method")?;
    let want = json!({"code": "METHOD_NOT_FOUND", "message": "unknown method: no.such.method"});
    if unknown["ok"] != false || unknown["error"] != want {
        return Err(format!("an unknown method answered {unknown}, want error {want}"));
    }
    Ok("health, status, system-presence, config.get (without the token), METHOD_NOT_FOUND".to_string())
}

fn health_payload(health: &Value, pid: u32, port: u16) -> Result<(), String> {
    let p = &health["payload"];
    let missing: Vec<&str> = spec::HEALTH_FIELDS.into_iter().filter(|f| p.get(f).is_none()).collect();
    if health["ok"] != true
        || p["ok"] != true
        || p["status"] != "live"
        || p["pid"] != pid
        || p["host"] != "127.0.0.1"
        || p["port"] != port
        || !missing.is_empty()
    {
        return Err(format!("health (pid {pid}, port {port}) answered {health}; missing {missing:?}"));
    }
    Ok(())
}

/// PROTO-13 (serving), PROTO-14, and statuses beyond 400.
fn probes(on: &On) {
    for path in ["/ready", "/readyz", "/startup", "/startupz"] {
        let result = on.http("GET", path).and_then(|a| {
            if a.status == 200 && a.json() == json!({"ok": true, "status": "ready"}) {
                Ok(format!("{path}: 200 while serving"))
            } else {
                Err(format!("{path} while serving: {} {:?}, want 200 {{\"ok\":true,\"status\":\"ready\"}}", a.status, a.body))
            }
        });
        on.ctx.check("PROTO-13", &result);
    }
    for path in ["/health", "/healthz"] {
        let result = on.http("GET", path).and_then(|a| {
            let json = a.json();
            if a.status == 200 && json["ok"] == true && json["status"] == "live" {
                Ok(format!("{path}: 200, ok true, status live"))
            } else {
                Err(format!("{path}: {} {:?}", a.status, a.body))
            }
        });
        on.ctx.check("PROTO-14", &result);
    }
}

/// PROTO-9 (shutdown), PROTO-13 (503 once shutdown has begun): an authenticated client, an
/// unauthenticated one, and a probe whose head is half sent, then SIGTERM.
fn shutdown(on: &On, gw: &mut Running) -> (Check, Option<Check>) {
    let mut ready = None;
    let result = (|| {
        let (mut authed, _) = on.handshake("conformance")?;
        let mut unauthed = on.open()?;
        ws::json(&mut unauthed)?;
        let mut probe = half_sent_probe(on)?;
        gw.signal(Signal::SIGTERM);
        // Every event since hello-ok is read here (ticks, then the shutdown event): seq rises by one from 1.
        let mut seq = 1u64;
        let event = loop {
            let frame = ws::json(&mut authed).map_err(|e| format!("SIGTERM sent: {e}"))?;
            if frame["seq"] != seq {
                return Err(format!("the authenticated client's event number {seq} since hello-ok is {frame}, want seq {seq}"));
            }
            seq += 1;
            if frame["event"] != "tick" {
                break frame;
            }
        };
        if event["type"] != "event" || event["event"] != "shutdown" || event["payload"] != json!({"reason": spec::SHUTDOWN_REASON}) {
            return Err(format!("after SIGTERM the authenticated client got {event}, want the shutdown event"));
        }
        ready = Some(finish_probe(&mut probe));
        closes_after_shutdown(&mut authed, &mut unauthed)?;
        let status = gw.proc.wait(on.ctx.settings.deadline).map_err(|e| format!("SIGTERM sent: {e}"))?;
        if status.code() != Some(0) {
            return Err(format!("SIGTERM sent: {}, want exit 0", gateway_harness::proc::describe_status(status)));
        }
        Ok("events with seq rising by one from 1, the shutdown event, then 1012 to the authenticated client; 1012 only to the other"
            .to_string())
    })();
    (result, ready)
}

fn half_sent_probe(on: &On) -> Result<TcpStream, String> {
    let mut probe = TcpStream::connect_timeout(&on.addr, on.ctx.settings.deadline).map_err(|e| format!("connect: {e}"))?;
    probe.set_read_timeout(Some(on.ctx.settings.deadline)).map_err(|e| e.to_string())?;
    probe.write_all(b"GET /readyz HTTP/1.1\r\n").map_err(|e| e.to_string())?;
    // A later request answered: the probe's connection was accepted and its bytes read.
    on.http("GET", "/healthz")?;
    Ok(probe)
}

fn finish_probe(probe: &mut TcpStream) -> Check {
    let _ = probe.write_all(b"Host: 127.0.0.1\r\n\r\n");
    let mut answer = String::new();
    let _ = probe.read_to_string(&mut answer);
    match Answer::parse(&answer) {
        Some(a) if a.status == 503 && a.json() == json!({"ok": false, "status": "shutting down"}) => {
            Ok("/readyz completed during shutdown: 503 shutting down".to_string())
        }
        _ => Err(format!("/readyz completed after the shutdown event: {answer:?}, want 503 {{\"ok\":false,\"status\":\"shutting down\"}}")),
    }
}

fn closes_after_shutdown(authed: &mut Ws, unauthed: &mut Ws) -> Result<(), String> {
    let want = (close::SERVICE_RESTART.0, close::SERVICE_RESTART.1.to_string());
    let (_, got) = ws::until_close(authed)?;
    if got != want {
        return Err(format!("authenticated client: close {} {:?} after the shutdown event, want 1012 \"service restart\"", got.0, got.1));
    }
    let (frames, got) = ws::until_close(unauthed)?;
    if !frames.is_empty() || got != want {
        return Err(format!(
            "unauthenticated client: frames {}, close {} {:?}, want the close 1012 only",
            Value::from(frames),
            got.0,
            got.1
        ));
    }
    Ok(())
}

/// PROTO-15: a `Sec-WebSocket-Key` that is not the base64 of 16 bytes gets 400.
fn websocket_keys(ctx: &Ctx) {
    strict(ctx, "PROTO-15", |on| on.ctx.check("PROTO-15", &bad_keys(on)));
}

/// PROTO-16: a text frame that is not UTF-8 closes 1007, a reserved opcode 1002, each with a close
/// frame (not a dropped connection), before and after `hello-ok`.
fn websocket_violations(ctx: &Ctx) {
    strict(ctx, "PROTO-16", |on| {
        on.ctx.check("PROTO-16", &invalid_utf8(on));
        on.ctx.check("PROTO-16", &reserved_opcode(on));
    });
}

/// Starts an instance for the row `id` (when the protocol is claimed) and runs `checks` on it.
fn strict(ctx: &Ctx, id: &str, checks: impl FnOnce(&On)) {
    let Some(token) = ctx.settings.claims.token.as_deref() else { return };
    let port = ctx.port();
    match ctx.start(port) {
        Ok(_gw) => checks(&On { ctx, addr: loopback(port), token }),
        Err(why) => ctx.record(id, Verdict::Fail, why),
    }
}

/// PROTO-15: upgrades whose key is too short, not base64, or the base64 of 20 bytes get 400.
fn bad_keys(on: &On) -> Check {
    for key in ["abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZ!==", "dGhlIHNhbXBsZSBub25jZXh4eA=="] {
        let upgrade = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            on.addr
        );
        let text = http_raw(on.addr, upgrade.as_bytes(), on.ctx.settings.deadline).map_err(|e| e.to_string())?;
        match Answer::parse(&text) {
            Some(a) if a.status == spec::status::BAD_REQUEST => {}
            Some(a) => {
                return Err(format!(
                    "an upgrade with Sec-WebSocket-Key {key:?} answered {}, want 400 (not the base64 of 16 bytes)",
                    a.status
                ))
            }
            None => return Err(format!("an upgrade with Sec-WebSocket-Key {key:?}: answer {text:?}, want 400")),
        }
    }
    Ok("4 upgrades with a key that is not the base64 of 16 bytes: 400 each".to_string())
}

/// PROTO-16: a text frame of bytes that are not UTF-8 closes 1007, before `connect` and after `hello-ok`.
fn invalid_utf8(on: &On) -> Check {
    let not_utf8: &[u8] = b"{\"type\":\"req\",\"id\":\"\xff\xfe\"}";
    let mut before = on.open()?;
    ws::json(&mut before).map_err(|e| format!("before connect: {e}"))?;
    expect_close(&mut before, |ws| ws::send_raw_text(ws, not_utf8), close::INVALID_UTF8, "a text frame that is not UTF-8, before connect")?;
    let (mut after, _) = on.handshake("strict-utf8")?;
    expect_close(&mut after, |ws| ws::send_raw_text(ws, not_utf8), close::INVALID_UTF8, "a text frame that is not UTF-8, after hello-ok")?;
    Ok("a text frame that is not UTF-8: close 1007, before connect and after hello-ok".to_string())
}

/// PROTO-16: a frame with a reserved opcode (3) closes 1002 with a close frame, after `hello-ok`.
fn reserved_opcode(on: &On) -> Check {
    let (mut ws, _) = on.handshake("strict-opcode")?;
    // FIN + opcode 3, masked, empty payload, mask 0.
    let frame = [0x83, 0x80, 0, 0, 0, 0];
    expect_close(&mut ws, |ws| ws::send_raw_bytes(ws, &frame), close::FRAMING_VIOLATION, "a frame with the reserved opcode 3")?;
    Ok("a frame with a reserved opcode: close 1002".to_string())
}

/// Sends with `send`, then requires a close frame with `code` (events before it are skipped).
fn expect_close(ws: &mut Ws, send: impl FnOnce(&mut Ws) -> Result<(), String>, code: u16, what: &str) -> Result<(), String> {
    send(ws)?;
    let (_, (got, reason)) = ws::until_close(ws).map_err(|e| format!("{what}: {e}, want close {code}"))?;
    match got {
        got if got == code => Ok(()),
        1006 => Err(format!("{what}: the connection was dropped without a close frame (1006), want close {code} (RFC 6455)")),
        got => Err(format!("{what}: close {got} {reason:?}, want close {code}")),
    }
}
