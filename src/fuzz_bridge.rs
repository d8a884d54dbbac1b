//! The fuzz targets' way into the crate's internals (`fuzz/fuzz_targets/`), compiled only under
//! `--cfg fuzzing` (cargo-fuzz sets it): each function runs one target's checks on one input, so
//! that the internals stay private and no public API exists for the fuzzer's sake.

/// `http_head` (SRV-3): `parse_head` on arbitrary bytes, then `route` and the response
/// builders: bad HTTP gets a status, never a panic; PROTO-15: only a valid key is upgraded.
pub fn http_head(data: &[u8]) {
    use crate::http::{self, parse_head, route, Parsed, Route, Status, MAX_HEAD_BYTES};

    match parse_head(data) {
        Ok(Parsed::Complete { head, len }) => {
            assert!(len <= data.len() && len <= MAX_HEAD_BYTES, "head length {len} of {}", data.len());
            // The head alone parses to the same head: what follows it is not part of it.
            assert_eq!(parse_head(&data[..len]), Ok(Parsed::Complete { head: head.clone(), len }));
            // The server reads incrementally: a head split across reads must not be refused early.
            for cut in [len - 1, len / 2] {
                assert_eq!(parse_head(&data[..cut]), Ok(Parsed::Partial), "prefix of {cut} bytes of a complete head");
            }
            let reply = match route(&head) {
                Route::Upgrade { accept_key } => {
                    assert_eq!(accept_key.len(), 28, "Sec-WebSocket-Accept is base64 of a SHA-1");
                    assert!(head.wants_websocket && head.path == "/");
                    // PROTO-15: only the base64 of 16 bytes is upgraded.
                    assert!(head.websocket_key.as_deref().is_some_and(http::valid_websocket_key));
                    http::upgrade_response(&accept_key)
                }
                Route::Health { head_only } | Route::Ready { head_only } => {
                    http::response(Status::Ok, "application/json", b"{}", head_only)
                }
                Route::Error(status) => {
                    let (code, _) = status.code_and_reason();
                    assert!((400..600).contains(&code), "an error route answered {code}");
                    http::error_response(status)
                }
            };
            assert!(reply.starts_with(b"HTTP/1.1 ") && reply.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        Ok(Parsed::Partial) => assert!(data.len() < MAX_HEAD_BYTES, "partial at {} bytes, over the limit", data.len()),
        Err(err) => {
            assert!(matches!(err.status(), Status::BadRequest | Status::HeaderFieldsTooLarge), "{err}");
            let _ = http::error_response(err.status());
        }
    }
}

/// `frame_gate` (PROTO-7): the frame gate in front of an unauthenticated client's WebSocket
/// stream. Any bytes, cut into any reads of at most `readable()` bytes: no panic; once refused the
/// gate stays refused; a read that `readable()` allowed never spans past a frame header it then
/// refuses.
pub fn frame_gate(data: &[u8]) {
    use crate::frame_gate::FrameGate;

    // The first byte picks the limit (0..=255 KiB in 1 KiB steps); the second how reads are cut.
    let Some((&limit, rest)) = data.split_first() else { return };
    let Some((&cut, mut bytes)) = rest.split_first() else { return };
    let mut gate = FrameGate::new(usize::from(limit) * 1024);
    let step = usize::from(cut.max(1));
    while !bytes.is_empty() {
        let allowed = match gate.readable() {
            Ok(n) => n,
            Err(refused) => {
                assert_eq!(gate.refused(), Some(refused));
                assert_eq!(gate.advance(bytes), Err(refused), "a refusal is final");
                return;
            }
        };
        assert!(allowed > 0, "a gate that is not refused always lets something through");
        let n = bytes.len().min(step).min(allowed);
        let (now, later) = bytes.split_at(n);
        let _ = gate.advance(now);
        bytes = later;
    }
}

/// `protocol_frame` (issue 6): protocol frame parsing and the handshake state machine never
/// panic. `parse_frame` accepts only well-formed requests; a session fed arbitrary frames, before
/// and after authentication, only ever emits JSON frames and known close codes.
pub fn protocol_frame(data: &[u8]) {
    use crate::protocol::{self, Session};
    use serde_json::json;

    if let Ok(request) = protocol::parse_frame(data) {
        assert!(!request.id.is_empty() && !request.method.is_empty());
    }
    // Before authentication.
    let mut fresh = Session::new("c".into(), "n".into(), protocol::Policy::default());
    check(fresh.on_frame(data, &View));
    // After authentication.
    let mut ready = Session::new("c".into(), "n".into(), protocol::Policy::default());
    let connect = json!({"type": "req", "id": "1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4, "auth": {"token": "t"},
        "client": {"id": "fuzz", "version": "0", "platform": "linux", "mode": "cli"}}});
    assert!(ready.on_frame(connect.to_string().as_bytes(), &View).authenticated);
    check(ready.on_frame(data, &View));
}

mod view {
    use crate::protocol::{self, GatewayView, LockView, Presence};
    use serde_json::{json, Value};

    pub(super) struct View;

    impl GatewayView for View {
        fn now_ms(&self) -> u64 {
            1
        }
        fn token_matches(&self, presented: &str) -> bool {
            presented == "t"
        }
        fn lock_view(&self) -> LockView {
            LockView {
                pid: 1,
                host: "127.0.0.1".into(),
                port: 1,
                profile: None,
                version: "0".into(),
                uptime_ms: 0,
                connections: 1,
                clients: 1,
            }
        }
        fn url(&self) -> String {
            "ws://127.0.0.1:1".into()
        }
        fn presence(&self) -> Vec<Presence> {
            Vec::new()
        }
        fn config(&self) -> Value {
            json!({})
        }
    }

    pub(super) fn check(outcome: protocol::Outcome) {
        for frame in &outcome.frames {
            assert!(serde_json::from_str::<Value>(frame).is_ok());
        }
        if let Some(close) = outcome.close {
            assert!([1002, 1008, 1009, 1012].contains(&close.code));
        }
    }
}

use view::{check, View};
