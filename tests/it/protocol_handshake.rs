//! The gateway protocol over real sockets against a real `gateway run` (spec/protocol.md, PROTO-*):
//! challenge, handshake, every close code, methods, ticks and the shutdown event.

use crate::support::*;
use gateway_harness::spec;
use nix::sys::signal::Signal;
use serde_json::json;

/// PROTO-1, PROTO-2: the challenge comes first; a good connect gets hello-ok (protocol 4).
#[test]
fn proto1_proto2_challenge_then_hello_ok() {
    let gw = start_gateway_with_token(&[]);
    let mut ws = ws_connect(gw.addr);
    let challenge = ws_json(&mut ws);
    assert_eq!(challenge["type"], "event");
    assert_eq!(challenge["event"], "connect.challenge");
    assert!(challenge["payload"]["nonce"].as_str().is_some_and(|n| n.len() == 36), "{challenge}");
    assert!(challenge["payload"]["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000));
    // The probe offers 3..4: still fine.
    ws_send(&mut ws, &connect_frame(3, 4, Some(TEST_TOKEN)));
    let hello = ws_json(&mut ws);
    assert_eq!(hello["type"], "res");
    assert_eq!(hello["id"], "connect-1");
    assert_eq!(hello["ok"], true);
    let payload = &hello["payload"];
    assert_eq!(payload["type"], "hello-ok");
    assert_eq!(payload["protocol"], 4);
    assert_eq!(payload["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(payload["features"]["methods"], json!(["health", "status", "system-presence", "config.get"]));
    assert_eq!(payload["policy"], json!({"maxPayload": 1048576, "maxBufferedBytes": 2097152, "tickIntervalMs": 30000}));
    // A second challenge never comes: the nonce differs per connection.
    let (mut other, _) = ws_handshake(gw.addr, TEST_TOKEN);
    assert_eq!(ws_call(&mut other, "h", "health")["ok"], true);
}

/// PROTO-3: a first request other than connect: error response, then close 1008.
#[test]
fn proto3_first_request_must_be_connect() {
    let gw = start_gateway_with_token(&[]);
    for first in [request_frame("a", "health"), "not json".to_string(), json!({"type": "event"}).to_string()] {
        let mut ws = ws_connect(gw.addr);
        ws_json(&mut ws);
        ws_send(&mut ws, &first);
        let (frames, close) = ws_until_close(&mut ws);
        assert_eq!(close, (1008, "invalid handshake: first request must be connect".to_string()), "{first}");
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["ok"], false);
        assert_eq!(frames[0]["error"]["code"], "INVALID_REQUEST");
    }
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &json!({"type": "req", "id": "c", "method": "connect", "params": {"minProtocol": 4}}).to_string());
    let (frames, close) = ws_until_close(&mut ws);
    assert_eq!(close, (1008, "invalid connect params".to_string()));
    assert_eq!(frames[0]["error"]["code"], "INVALID_REQUEST");
}

/// PROTO-4: a protocol range that excludes 4: PROTOCOL_MISMATCH, close 1002.
#[test]
fn proto4_protocol_mismatch_closes_1002() {
    let gw = start_gateway_with_token(&[]);
    for (min, max) in [(1, 3), (5, 6)] {
        let mut ws = ws_connect(gw.addr);
        ws_json(&mut ws);
        ws_send(&mut ws, &connect_frame(min, max, Some(TEST_TOKEN)));
        let (frames, close) = ws_until_close(&mut ws);
        assert_eq!(close, crate::support::close_of(spec::close::PROTOCOL_MISMATCH));
        assert_eq!(frames[0]["error"]["code"], "PROTOCOL_MISMATCH");
    }
}

/// PROTO-5: a wrong token: AUTH_TOKEN_MISMATCH, close 1008; none: AUTH_TOKEN_MISSING, close 1008.
/// DOOR-1: a token one character short of the real one is refused too.
#[test]
fn proto5_wrong_or_missing_token_closes_1008() {
    let gw = start_gateway_with_token(&[]);
    for (token, code) in
        [(Some("wrong"), "AUTH_TOKEN_MISMATCH"), (Some("test-token-012345678"), "AUTH_TOKEN_MISMATCH"), (None, "AUTH_TOKEN_MISSING")]
    {
        let mut ws = ws_connect(gw.addr);
        ws_json(&mut ws);
        ws_send(&mut ws, &connect_frame(4, 4, token));
        let (frames, close) = ws_until_close(&mut ws);
        assert_eq!(close, crate::support::close_of(spec::close::UNAUTHORIZED));
        assert_eq!(frames[0]["id"], "connect-1");
        assert_eq!(frames[0]["error"]["code"], code);
        assert!(frames[0]["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// PROTO-6: no handshake within the (configurable) timeout: close 1008 "handshake timeout".
#[test]
fn proto6_handshake_timeout_closes_1008() {
    let gw = start_gateway_with_token(&["--handshake-timeout-ms", "200"]);
    let mut ws = ws_connect(gw.addr);
    assert_eq!(ws_json(&mut ws)["event"], "connect.challenge");
    let (frames, close) = ws_until_close(&mut ws);
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(close, crate::support::close_of(spec::close::HANDSHAKE_TIMEOUT));
    // An authenticated client is not subject to it: it still answers after the timeout.
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let mut idle = ws_connect(gw.addr);
    ws_json(&mut idle);
    assert_eq!(ws_until_close(&mut idle).1 .0, 1008);
    assert_eq!(ws_call(&mut ws, "h", "health")["ok"], true);
}

/// PROTO-7: frames over 64 KiB before authentication, or over 1 MiB after, close 1009.
#[test]
fn proto7_oversize_frames_close_1009() {
    let gw = start_gateway_with_token(&[]);
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &" ".repeat(64 * 1024 + 1));
    assert_eq!(ws_until_close(&mut ws).1, crate::support::close_of(spec::close::TOO_LARGE));

    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    // 100 KiB after authentication: answered (a malformed request), not closed.
    let padded = json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "x".repeat(100 * 1024)}}).to_string();
    ws_send(&mut ws, &padded);
    assert_eq!(ws_json(&mut ws)["id"], "big");
    ws_send(&mut ws, &" ".repeat(1024 * 1024 + 1));
    let (_, close) = ws_until_close(&mut ws);
    assert_eq!(close, crate::support::close_of(spec::close::TOO_LARGE));
}

/// A client frame's header: `fin`, `opcode`, a payload of `len` bytes, masked with the all-zero
/// key (so the payload goes as it is).
fn client_frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 4]);
    out
}

/// A complete client text frame carrying `text`.
fn client_text_frame(text: &str) -> Vec<u8> {
    let mut out = client_frame_header(true, 1, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
    out
}

/// PROTO-7: before hello-ok a frame is refused from its header, without the gateway waiting for
/// (or buffering) its payload: a frame announcing 900 KiB (under the 1 MiB transport limit) or
/// 8 MiB, or a fragment that takes its message over 64 KiB, of which only the header and 4 KiB
/// are sent, gets close 1009 "frame too large" at once; waiting for the rest would instead run
/// into the read deadline (the handshake timeout is a minute). Exactly 64 KiB is not refused.
/// Right after a successful `connect`, even pipelined before hello-ok arrives, 100 KiB passes.
#[test]
fn proto7_preauth_frame_refused_from_its_header_unread() {
    use std::io::Write;
    let gw = start_gateway_with_token(&["--handshake-timeout-ms", "60000"]);
    let partial = |opcode: u8, announced: u64| {
        let mut bytes = client_frame_header(true, opcode, announced);
        bytes.extend_from_slice(&[b' '; 4096]);
        bytes
    };
    let mut fragmented = client_frame_header(false, 1, 60 * 1024);
    fragmented.extend_from_slice(&[b' '; 60 * 1024]);
    fragmented.extend(partial(0, 60 * 1024));
    for (what, bytes) in [("900 KiB", partial(1, 900 * 1024)), ("8 MiB", partial(2, 8 << 20)), ("60 KiB + 60 KiB", fragmented)] {
        let mut ws = ws_connect(gw.addr);
        ws_json(&mut ws);
        ws.get_mut().write_all(&bytes).unwrap();
        assert_eq!(ws_until_close(&mut ws), (vec![], crate::support::close_of(spec::close::TOO_LARGE)), "{what}");
    }
    // 64 KiB is within the limit: read, and refused only as a first request that is not connect.
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws.get_mut().write_all(&client_text_frame(&" ".repeat(64 * 1024))).unwrap();
    assert_eq!(ws_until_close(&mut ws).1 .0, 1008);

    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    let padded = json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "x".repeat(100 * 1024)}}).to_string();
    let mut pipelined = client_text_frame(&connect_frame(4, 4, Some(TEST_TOKEN)));
    pipelined.extend(client_text_frame(&padded));
    ws.get_mut().write_all(&pipelined).unwrap();
    assert_eq!(ws_json(&mut ws)["payload"]["type"], "hello-ok");
    assert_eq!(ws_json(&mut ws)["id"], "big");
    // A 100 KiB message in two fragments after hello-ok.
    let (half, rest) = padded.as_bytes().split_at(padded.len() / 2);
    let mut two = client_frame_header(false, 1, half.len() as u64);
    two.extend_from_slice(half);
    two.extend(client_frame_header(true, 0, rest.len() as u64));
    two.extend_from_slice(rest);
    ws.get_mut().write_all(&two).unwrap();
    assert_eq!(ws_json(&mut ws)["id"], "big");
    assert_eq!(ws_call(&mut ws, "after", "health")["ok"], true);
}

/// PROTO-8: methods after hello: health (OpenClaw's fields and the lock's view), status,
/// system-presence, config.get (never the token), unknown methods.
#[test]
fn proto8_methods_after_hello() {
    let gw = start_gateway_with_token(&[]);
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let health = ws_call(&mut ws, "1", "health");
    assert_eq!(health["ok"], true, "{health}");
    let p = &health["payload"];
    for field in gateway_harness::spec::HEALTH_FIELDS {
        assert!(p.get(field).is_some(), "health lacks {field}: {p}");
    }
    assert_eq!(p["ok"], true);
    assert_eq!(p["status"], "live");
    assert_eq!(p["pid"], gw.proc.pid());
    assert_eq!(p["host"], "127.0.0.1");
    assert_eq!(p["port"], gw.port());
    assert_eq!(p["profile"], serde_json::Value::Null);
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert!(p["uptimeMs"].is_u64());
    assert_eq!(p["clients"], 1);

    let status = ws_call(&mut ws, "2", "status");
    assert_eq!(status["payload"]["url"], gw.url());
    assert_eq!(status["payload"]["pid"], gw.proc.pid());

    let (_second, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let presence = ws_call(&mut ws, "3", "system-presence");
    let list = presence["payload"].as_array().expect("array");
    assert_eq!(list.len(), 2, "{presence}");
    assert_eq!(list[0]["client"]["id"], "cli");
    assert_eq!(list[0]["role"], "operator");

    let config = ws_call(&mut ws, "4", "config.get");
    assert_eq!(config["ok"], true);
    assert_eq!(config["payload"]["port"], gw.port());
    assert_eq!(config["payload"]["auth"], json!({"mode": "token", "source": "value"}));
    assert!(!config.to_string().contains(TEST_TOKEN), "config.get leaks the token: {config}");

    let unknown = ws_call(&mut ws, "5", "no.such.method");
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["error"], json!({"code": "METHOD_NOT_FOUND", "message": "unknown method: no.such.method"}));
}

/// PROTO-9: ticks at the policy's interval; on shutdown the `shutdown` event, then close 1012.
#[test]
fn proto9_ticks_then_shutdown_event_and_1012() {
    let gw = start_gateway_with_token(&["--tick-interval-ms", "50"]);
    let (mut ws, hello) = ws_handshake(gw.addr, TEST_TOKEN);
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 50);
    let mut unauthenticated = ws_connect(gw.addr);
    ws_json(&mut unauthenticated);
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let frame = ws_json(&mut ws);
        assert_eq!(frame["event"], "tick", "{frame}");
        assert!(frame["payload"]["ts"].is_u64());
        seqs.push(frame["seq"].as_u64().unwrap());
    }
    assert!(seqs[0] < seqs[1]);
    gw.signal(Signal::SIGTERM);
    let (frames, close) = ws_until_close(&mut ws);
    let last = frames.last().expect("the shutdown event");
    assert_eq!(last["event"], "shutdown");
    assert_eq!(last["payload"], json!({"reason": spec::SHUTDOWN_REASON}));
    assert_eq!(close, crate::support::close_of(spec::close::SERVICE_RESTART));
    // An unauthenticated client gets the close only.
    let (frames, close) = ws_until_close(&mut unauthenticated);
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(close, crate::support::close_of(spec::close::SERVICE_RESTART));
    assert!(gw.wait().success());
}

/// PROTO-10: malformed frames after hello get INVALID_REQUEST and the connection stays usable.
#[test]
fn proto10_malformed_frames_after_hello_get_errors() {
    let gw = start_gateway_with_token(&[]);
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    for bad in ["", "{", "[1,2]", r#"{"type":"req","id":"q"}"#, r#"{"type":"req","id":7,"method":"health"}"#] {
        ws_send(&mut ws, bad);
        let reply = ws_json(&mut ws);
        assert_eq!(reply["ok"], false, "{bad}");
        assert_eq!(reply["error"]["code"], "INVALID_REQUEST", "{bad}");
    }
    ws.send(tokio_tungstenite::tungstenite::Message::binary(request_frame("bin", "health").into_bytes())).unwrap();
    assert_eq!(ws_json(&mut ws)["id"], "bin");
    assert_eq!(ws_call(&mut ws, "after", "health")["ok"], true);
}
