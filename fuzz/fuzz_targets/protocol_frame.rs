//! Fuzz target (issue 6): protocol frame parsing and the handshake state machine never panic.
//! `parse_frame` must accept only well-formed requests; a session fed arbitrary frames, before
//! and after authentication, only ever emits JSON frames and known close codes.
#![no_main]

use gateway_lock::protocol::{self, GatewayView, LockView, Presence, Session};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

struct View;

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

fn check(outcome: protocol::Outcome) {
    for frame in &outcome.frames {
        assert!(serde_json::from_str::<Value>(frame).is_ok());
    }
    if let Some(close) = outcome.close {
        assert!([1002, 1008, 1009, 1012].contains(&close.code));
    }
}

fuzz_target!(|data: &[u8]| {
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
});
