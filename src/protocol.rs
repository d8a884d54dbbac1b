//! The gateway protocol on the held port, free of I/O: frames, the handshake state machine and
//! method dispatch (`spec/protocol.md`, PROTO-*).
//!
//! A compatible subset of the OpenClaw gateway protocol, version [`PROTOCOL_VERSION`]. Text
//! frames carry JSON: requests `{"type":"req","id","method","params"}`, responses
//! `{"type":"res","id","ok","payload"|"error"}` and events `{"type":"event","event","payload","seq"?}`.
//!
//! A [`Session`] is one WebSocket connection's protocol state. The server feeds it frames and
//! timer expiries and carries out the [`Outcome`]s it returns (frames to send, a close to
//! perform); everything the session needs to know about the gateway comes through the
//! [`GatewayView`] trait, so proptest drives it without sockets or clocks.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The protocol version this gateway speaks; a client's `minProtocol..=maxProtocol` must include it.
pub(crate) const PROTOCOL_VERSION: u32 = 4;
/// The largest frame accepted before the handshake completes; larger closes with [`CLOSE_TOO_BIG`].
pub(crate) const MAX_PREAUTH_FRAME_BYTES: usize = 64 * 1024;
/// The largest frame accepted after the handshake (the policy's `maxPayload`).
pub(crate) const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// The most bytes the gateway queues for one client (the policy's `maxBufferedBytes`).
pub(crate) const MAX_BUFFERED_BYTES: usize = 2 * 1024 * 1024;
/// Default interval of the `tick` event.
pub(crate) const DEFAULT_TICK_INTERVAL_MS: u64 = 30_000;
/// Default time a client has, from the WebSocket open, to complete the `connect` handshake.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Close code: policy violation (bad first frame, bad credentials, handshake timeout).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code: protocol error (no common protocol version).
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: a text frame that is not UTF-8 (PROTO-16).
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: the gateway is shutting down (same as [`crate::server::SHUTDOWN_CLOSE_CODE`]).
pub(crate) const CLOSE_SERVICE_RESTART: u16 = 1012;

/// Close reason when the first request is not `connect` (or the first frame is not a request).
pub(crate) const REASON_FIRST_NOT_CONNECT: &str = "invalid handshake: first request must be connect";
/// Close reason when `connect`'s params are malformed.
pub(crate) const REASON_BAD_CONNECT: &str = "invalid connect params";
/// Close reason when the protocol ranges do not meet.
pub(crate) const REASON_PROTOCOL_MISMATCH: &str = "protocol mismatch";
/// Close reason when the token is missing or wrong.
pub(crate) const REASON_UNAUTHORIZED: &str = "unauthorized";
/// Close reason when the handshake did not complete in time.
pub(crate) const REASON_HANDSHAKE_TIMEOUT: &str = "handshake timeout";
/// Close reason for a frame over the limit.
pub(crate) const REASON_TOO_BIG: &str = "frame too large";
/// Close reason for a text frame that is not UTF-8 (PROTO-16).
pub(crate) const REASON_INVALID_UTF8: &str = "invalid UTF-8";
/// Close reason for a violation of the WebSocket protocol (PROTO-16): an unmasked client frame, RSV
/// bits, an unknown opcode, a fragmented or oversize control frame.
pub(crate) const REASON_PROTOCOL_ERROR: &str = "protocol error";
/// Close reason on shutdown.
pub(crate) const REASON_SERVICE_RESTART: &str = "service restart";
/// The `reason` of the `shutdown` event.
pub(crate) const SHUTDOWN_EVENT_REASON: &str = "gateway stopping";

/// The methods answered after the handshake, in `hello-ok`'s `features.methods`.
pub(crate) const METHODS: [&str; 4] = ["health", "status", "system-presence", "config.get"];
/// The events the gateway sends, in `hello-ok`'s `features.events`.
pub(crate) const EVENTS: [&str; 3] = ["connect.challenge", "tick", "shutdown"];

/// Stable error codes of error responses (`error.code`).
pub(crate) mod code {
    /// The frame is not valid JSON, not a request, or has malformed params.
    pub(crate) const INVALID_REQUEST: &str = "INVALID_REQUEST";
    /// The client's protocol range excludes [`super::PROTOCOL_VERSION`].
    pub(crate) const PROTOCOL_MISMATCH: &str = "PROTOCOL_MISMATCH";
    /// `connect` carried no token.
    pub(crate) const AUTH_TOKEN_MISSING: &str = "AUTH_TOKEN_MISSING";
    /// `connect` carried a token that is not the gateway's.
    pub(crate) const AUTH_TOKEN_MISMATCH: &str = "AUTH_TOKEN_MISMATCH";
    /// The method is not one of [`super::METHODS`].
    pub(crate) const METHOD_NOT_FOUND: &str = "METHOD_NOT_FOUND";
}

/// A request frame from a client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    /// The client's request id, echoed in the response.
    pub id: String,
    /// The method name.
    pub method: String,
    /// The params (`null` when absent).
    pub params: Value,
}

/// Why a frame is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Not valid JSON (or not UTF-8).
    #[error("invalid frame: not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("invalid frame: not a JSON object")]
    NotObject,
    /// An object whose `type` is not `req`.
    #[error("invalid frame: expected type \"req\"")]
    NotRequest,
    /// A request without a non-empty string `id`.
    #[error("invalid frame: id must be a non-empty string")]
    BadId,
    /// A request without a non-empty string `method`.
    #[error("invalid frame: method must be a non-empty string")]
    BadMethod,
}

/// A frame that failed to parse, with the request id when one could be recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadFrame {
    /// The frame's string `id`, if it had one.
    pub id: Option<String>,
    /// What was wrong.
    pub error: FrameError,
}

/// Parses one client frame (text or binary payload) into a [`Request`]. Never panics on any input.
/// This is the entry point of the `protocol_frame` fuzz target.
pub(crate) fn parse_frame(bytes: &[u8]) -> Result<Request, BadFrame> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| BadFrame { id: None, error: FrameError::NotJson(e.to_string()) })?;
    let Value::Object(mut obj) = value else {
        return Err(BadFrame { id: None, error: FrameError::NotObject });
    };
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let fail = |error| Err(BadFrame { id: id.clone(), error });
    if obj.get("type").and_then(Value::as_str) != Some("req") {
        return fail(FrameError::NotRequest);
    }
    let Some(req_id) = id.clone() else {
        return fail(FrameError::BadId);
    };
    let method = match obj.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return fail(FrameError::BadMethod),
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    Ok(Request { id: req_id, method, params })
}

/// The `client` block of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientInfo {
    /// The client's id (`cli`, `gateway-client`, ...).
    pub id: String,
    /// The client's version.
    pub version: String,
    /// The client's platform.
    pub platform: String,
    /// The client's mode (`cli`, `probe`, `backend`, ...).
    pub mode: String,
    /// Optional device family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Optional instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Optional display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The `auth` block of `connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct ConnectAuth {
    /// The shared gateway token.
    #[serde(default)]
    pub token: Option<String>,
}

/// The params of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectParams {
    /// Lowest protocol version the client speaks.
    pub min_protocol: u32,
    /// Highest protocol version the client speaks.
    pub max_protocol: u32,
    /// Who the client is.
    pub client: ClientInfo,
    /// The requested role (default `operator`).
    #[serde(default)]
    pub role: Option<String>,
    /// The requested scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Credentials.
    #[serde(default)]
    pub auth: Option<ConnectAuth>,
}

/// One connected, authenticated client, as `system-presence` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Presence {
    /// The gateway's id for this connection.
    pub conn_id: String,
    /// The client's own description.
    pub client: ClientInfo,
    /// The role granted.
    pub role: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// When the handshake completed (ms since the Unix epoch).
    pub connected_at_ms: u64,
}

/// The lock's view of the gateway: what `health` and `status` report besides OpenClaw's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockView {
    /// This process's id.
    pub pid: u32,
    /// The bound host (literal address).
    pub host: String,
    /// The bound port.
    pub port: u16,
    /// The profile the gateway runs under (`null` without `--profile`).
    pub profile: Option<String>,
    /// The gateway's version.
    pub version: String,
    /// Milliseconds since the lock was taken.
    pub uptime_ms: u64,
    /// Open connections of any kind (HTTP and WebSocket, authenticated or not).
    pub connections: usize,
    /// Authenticated WebSocket clients.
    pub clients: usize,
}

/// What a [`Session`] asks of the gateway around it.
pub(crate) trait GatewayView {
    /// Wall-clock time, ms since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Whether `presented` is the gateway's token (compared in constant time).
    fn token_matches(&self, presented: &str) -> bool;
    /// The lock's view, for `health` and `status`.
    fn lock_view(&self) -> LockView;
    /// The listening URL, `ws://host:port`.
    fn url(&self) -> String;
    /// Connected, authenticated clients.
    fn presence(&self) -> Vec<Presence>;
    /// The effective settings for `config.get` (never the token).
    fn config(&self) -> Value;
}

/// A close the server must perform: send a close frame with this code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Close {
    /// The close code.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
}

/// What the server must do after feeding the session an input.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outcome {
    /// Text frames to send, in order.
    pub frames: Vec<String>,
    /// Then close with this, if set; the session is then closed.
    pub close: Option<Close>,
    /// This input completed the handshake: the client is now authenticated.
    pub authenticated: bool,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The challenge was sent; waiting for `connect`.
    AwaitingConnect,
    /// `hello-ok` was sent; methods are served.
    Ready,
    /// A close was decided; nothing more is sent but the close.
    Closed,
}

/// Settings announced in `hello-ok`'s policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Interval of `tick` events.
    pub tick_interval_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { tick_interval_ms: DEFAULT_TICK_INTERVAL_MS }
    }
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    phase: Phase,
    conn_id: String,
    nonce: String,
    policy: Policy,
    seq: u64,
    presence: Option<Presence>,
}

/// A response frame `{"type":"res","id","ok":true,"payload"}`.
pub(crate) fn ok_response(id: &str, payload: Value) -> String {
    json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

/// A response frame `{"type":"res","id","ok":false,"error":{"code","message"}}`; `id` is `null`
/// when the frame's id could not be recovered.
pub(crate) fn error_response(id: Option<&str>, code: &str, message: &str) -> String {
    json!({"type": "res", "id": id, "ok": false, "error": {"code": code, "message": message}}).to_string()
}

/// An event frame; `seq` is omitted when `None`.
pub(crate) fn event(name: &str, payload: Value, seq: Option<u64>) -> String {
    let mut frame = json!({"type": "event", "event": name, "payload": payload});
    if let Some(seq) = seq {
        frame["seq"] = json!(seq);
    }
    frame.to_string()
}

impl Session {
    /// A new session for connection `conn_id`; `nonce` goes into the challenge.
    pub(crate) fn new(conn_id: String, nonce: String, policy: Policy) -> Self {
        Session { phase: Phase::AwaitingConnect, conn_id, nonce, policy, seq: 0, presence: None }
    }

    /// Where the session is.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The client, once authenticated.
    pub(crate) fn presence(&self) -> Option<&Presence> {
        self.presence.as_ref()
    }

    /// The largest frame accepted now: [`MAX_PREAUTH_FRAME_BYTES`] before the handshake, [`MAX_FRAME_BYTES`] after.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        match self.phase {
            Phase::Ready => MAX_FRAME_BYTES,
            _ => MAX_PREAUTH_FRAME_BYTES,
        }
    }

    /// The first frame the server sends on open: the `connect.challenge` event.
    pub(crate) fn challenge(&self, now_ms: u64) -> String {
        event("connect.challenge", json!({"nonce": self.nonce, "ts": now_ms}), None)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn close(&mut self, frames: Vec<String>, code: u16, reason: &'static str) -> Outcome {
        if self.phase == Phase::Closed {
            return Outcome::default();
        }
        self.phase = Phase::Closed;
        Outcome { frames, close: Some(Close { code, reason }), authenticated: false }
    }

    /// Feeds one received data frame (text or binary payload).
    pub(crate) fn on_frame(&mut self, bytes: &[u8], view: &dyn GatewayView) -> Outcome {
        match self.phase {
            Phase::Closed => Outcome::default(),
            _ if bytes.len() > self.max_frame_bytes() => self.on_oversize(),
            Phase::AwaitingConnect => self.on_handshake_frame(bytes, view),
            Phase::Ready => self.on_request_frame(bytes, view),
        }
    }

    /// The transport refused a frame over the limit: close 1009.
    pub(crate) fn on_oversize(&mut self) -> Outcome {
        self.close(Vec::new(), CLOSE_TOO_BIG, REASON_TOO_BIG)
    }

    /// The handshake deadline passed. Closes 1008 if still unauthenticated; otherwise nothing.
    pub(crate) fn on_handshake_timeout(&mut self) -> Outcome {
        match self.phase {
            Phase::AwaitingConnect => self.close(Vec::new(), CLOSE_POLICY, REASON_HANDSHAKE_TIMEOUT),
            _ => Outcome::default(),
        }
    }

    /// The tick timer fired: a `tick` event for an authenticated session, nothing otherwise.
    pub(crate) fn on_tick(&mut self, now_ms: u64) -> Outcome {
        match self.phase {
            Phase::Ready => {
                let seq = self.next_seq();
                Outcome { frames: vec![event("tick", json!({"ts": now_ms}), Some(seq))], ..Outcome::default() }
            }
            _ => Outcome::default(),
        }
    }

    /// The gateway is shutting down: the `shutdown` event (authenticated clients only), then close 1012.
    pub(crate) fn on_shutdown(&mut self) -> Outcome {
        let frames = match self.phase {
            Phase::Ready => {
                let seq = self.next_seq();
                vec![event("shutdown", json!({"reason": SHUTDOWN_EVENT_REASON}), Some(seq))]
            }
            _ => Vec::new(),
        };
        self.close(frames, CLOSE_SERVICE_RESTART, REASON_SERVICE_RESTART)
    }

    fn on_handshake_frame(&mut self, bytes: &[u8], view: &dyn GatewayView) -> Outcome {
        let request = match parse_frame(bytes) {
            Ok(request) => request,
            Err(bad) => {
                let reply = error_response(bad.id.as_deref(), code::INVALID_REQUEST, REASON_FIRST_NOT_CONNECT);
                return self.close(vec![reply], CLOSE_POLICY, REASON_FIRST_NOT_CONNECT);
            }
        };
        if request.method != "connect" {
            let reply = error_response(Some(&request.id), code::INVALID_REQUEST, REASON_FIRST_NOT_CONNECT);
            return self.close(vec![reply], CLOSE_POLICY, REASON_FIRST_NOT_CONNECT);
        }
        let params: ConnectParams = match serde_json::from_value(request.params) {
            Ok(params) => params,
            Err(err) => {
                let reply = error_response(Some(&request.id), code::INVALID_REQUEST, &format!("{REASON_BAD_CONNECT}: {err}"));
                return self.close(vec![reply], CLOSE_POLICY, REASON_BAD_CONNECT);
            }
        };
        if !(params.min_protocol..=params.max_protocol).contains(&PROTOCOL_VERSION) {
            let message = format!(
                "protocol mismatch: gateway speaks {PROTOCOL_VERSION}, client offered {}..{}",
                params.min_protocol, params.max_protocol
            );
            let reply = error_response(Some(&request.id), code::PROTOCOL_MISMATCH, &message);
            return self.close(vec![reply], CLOSE_PROTOCOL, REASON_PROTOCOL_MISMATCH);
        }
        let token = params.auth.as_ref().and_then(|a| a.token.as_deref()).filter(|t| !t.is_empty());
        let Some(token) = token else {
            let reply = error_response(Some(&request.id), code::AUTH_TOKEN_MISSING, "unauthorized: gateway token missing");
            return self.close(vec![reply], CLOSE_POLICY, REASON_UNAUTHORIZED);
        };
        if !view.token_matches(token) {
            let reply = error_response(Some(&request.id), code::AUTH_TOKEN_MISMATCH, "unauthorized: gateway token mismatch");
            return self.close(vec![reply], CLOSE_POLICY, REASON_UNAUTHORIZED);
        }
        let role = params.role.clone().unwrap_or_else(|| "operator".to_string());
        let presence =
            Presence { conn_id: self.conn_id.clone(), client: params.client, role, scopes: params.scopes, connected_at_ms: view.now_ms() };
        let hello = self.hello_ok(&presence, view);
        self.presence = Some(presence);
        self.phase = Phase::Ready;
        Outcome { frames: vec![ok_response(&request.id, hello)], close: None, authenticated: true }
    }

    fn hello_ok(&self, presence: &Presence, view: &dyn GatewayView) -> Value {
        let lock = view.lock_view();
        json!({
            "type": "hello-ok",
            "protocol": PROTOCOL_VERSION,
            "server": {"version": lock.version, "connId": self.conn_id, "host": lock.host, "pid": lock.pid},
            "features": {"methods": METHODS, "events": EVENTS},
            "auth": {"role": presence.role, "scopes": presence.scopes},
            "policy": {
                "maxPayload": MAX_FRAME_BYTES,
                "maxBufferedBytes": MAX_BUFFERED_BYTES,
                "tickIntervalMs": self.policy.tick_interval_ms,
            },
        })
    }

    fn on_request_frame(&mut self, bytes: &[u8], view: &dyn GatewayView) -> Outcome {
        let reply = match parse_frame(bytes) {
            Ok(request) => dispatch(&request, view),
            Err(bad) => error_response(bad.id.as_deref(), code::INVALID_REQUEST, &bad.error.to_string()),
        };
        Outcome { frames: vec![reply], ..Outcome::default() }
    }
}

/// The `health` payload: the fields OpenClaw's CLI reads, plus the lock's view.
pub(crate) fn health_payload(view: &dyn GatewayView) -> Value {
    let started = view.now_ms();
    let mut payload = Map::new();
    payload.insert("ok".into(), json!(true));
    payload.insert("status".into(), json!("live"));
    payload.insert("ts".into(), json!(started));
    payload.insert("durationMs".into(), json!(0));
    payload.insert("channels".into(), json!({}));
    payload.insert("channelOrder".into(), json!([]));
    payload.insert("channelLabels".into(), json!({}));
    payload.insert("heartbeatSeconds".into(), json!(0));
    payload.insert("defaultAgentId".into(), json!("main"));
    payload.insert("agents".into(), json!([]));
    payload.insert("sessions".into(), json!({"path": "", "count": 0, "recent": []}));
    if let Value::Object(lock) = serde_json::to_value(view.lock_view()).unwrap_or_default() {
        payload.extend(lock);
    }
    Value::Object(payload)
}

/// Answers one request of an authenticated session.
pub(crate) fn dispatch(request: &Request, view: &dyn GatewayView) -> String {
    let payload = match request.method.as_str() {
        "health" => health_payload(view),
        "status" => {
            let mut payload = health_payload(view);
            payload["url"] = json!(view.url());
            payload["listening"] = json!(view.url());
            payload
        }
        "system-presence" => serde_json::to_value(view.presence()).unwrap_or_default(),
        "config.get" => view.config(),
        "connect" => return error_response(Some(&request.id), code::INVALID_REQUEST, "already connected"),
        other => {
            let shown: String = other.chars().take(64).collect();
            return error_response(Some(&request.id), code::METHOD_NOT_FOUND, &format!("unknown method: {shown}"));
        }
    };
    ok_response(&request.id, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Fake;

    impl GatewayView for Fake {
        fn now_ms(&self) -> u64 {
            1_700_000_000_000
        }
        fn token_matches(&self, presented: &str) -> bool {
            presented == "secret"
        }
        fn lock_view(&self) -> LockView {
            LockView {
                pid: 42,
                host: "127.0.0.1".into(),
                port: 18789,
                profile: None,
                version: "0.1.0".into(),
                uptime_ms: 5,
                connections: 1,
                clients: 1,
            }
        }
        fn url(&self) -> String {
            "ws://127.0.0.1:18789".into()
        }
        fn presence(&self) -> Vec<Presence> {
            Vec::new()
        }
        fn config(&self) -> Value {
            json!({"port": 18789})
        }
    }

    fn session() -> Session {
        Session::new("c1".into(), "n1".into(), Policy::default())
    }

    fn connect(min: u32, max: u32, token: Option<&str>) -> String {
        let mut params = json!({
            "minProtocol": min, "maxProtocol": max,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
            "role": "operator", "scopes": ["operator.read"],
        });
        if let Some(token) = token {
            params["auth"] = json!({"token": token});
        }
        json!({"type": "req", "id": "1", "method": "connect", "params": params}).to_string()
    }

    fn parsed(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    fn ready() -> Session {
        let mut s = session();
        let out = s.on_frame(connect(3, 4, Some("secret")).as_bytes(), &Fake);
        assert!(out.authenticated);
        s
    }

    /// PROTO-1: the challenge carries a nonce and a timestamp.
    #[test]
    fn proto1_challenge_has_nonce_and_ts() {
        let frame = parsed(&session().challenge(7));
        assert_eq!(frame, json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n1", "ts": 7}}));
    }

    /// PROTO-2: a good connect gets hello-ok with protocol 4, features and policy.
    #[test]
    fn proto2_connect_gets_hello_ok() {
        let mut s = session();
        let out = s.on_frame(connect(3, 4, Some("secret")).as_bytes(), &Fake);
        assert!(out.authenticated && out.close.is_none());
        let res = parsed(&out.frames[0]);
        assert_eq!(res["type"], "res");
        assert_eq!(res["id"], "1");
        assert_eq!(res["ok"], true);
        assert_eq!(res["payload"]["type"], "hello-ok");
        assert_eq!(res["payload"]["protocol"], 4);
        assert_eq!(res["payload"]["server"]["version"], "0.1.0");
        assert_eq!(res["payload"]["features"]["methods"], json!(METHODS));
        assert_eq!(res["payload"]["policy"]["maxPayload"], MAX_FRAME_BYTES);
        assert_eq!(res["payload"]["policy"]["tickIntervalMs"], DEFAULT_TICK_INTERVAL_MS);
        assert_eq!(s.phase(), Phase::Ready);
        assert_eq!(s.max_frame_bytes(), MAX_FRAME_BYTES);
    }

    /// PROTO-3: a first request other than connect: error response, close 1008.
    #[test]
    fn proto3_first_request_must_be_connect() {
        let mut s = session();
        let out = s.on_frame(br#"{"type":"req","id":"a","method":"health"}"#, &Fake);
        assert_eq!(out.close, Some(Close { code: 1008, reason: "invalid handshake: first request must be connect" }));
        let res = parsed(&out.frames[0]);
        assert_eq!(res["id"], "a");
        assert_eq!(res["error"]["code"], "INVALID_REQUEST");
        assert_eq!(s.phase(), Phase::Closed);
        assert_eq!(s.on_frame(connect(4, 4, Some("secret")).as_bytes(), &Fake), Outcome::default());
    }

    /// PROTO-4: a protocol range that excludes 4: close 1002.
    #[test]
    fn proto4_protocol_mismatch_closes_1002() {
        for (min, max) in [(1, 3), (5, 9), (4, 3)] {
            let out = session().on_frame(connect(min, max, Some("secret")).as_bytes(), &Fake);
            assert_eq!(out.close, Some(Close { code: 1002, reason: "protocol mismatch" }));
            assert_eq!(parsed(&out.frames[0])["error"]["code"], "PROTOCOL_MISMATCH");
        }
    }

    /// PROTO-5: a wrong or missing token: AUTH_TOKEN_MISMATCH / AUTH_TOKEN_MISSING, close 1008.
    #[test]
    fn proto5_bad_token_closes_1008() {
        let out = session().on_frame(connect(4, 4, Some("nope")).as_bytes(), &Fake);
        assert_eq!(out.close, Some(Close { code: 1008, reason: "unauthorized" }));
        assert_eq!(parsed(&out.frames[0])["error"]["code"], "AUTH_TOKEN_MISMATCH");
        let out = session().on_frame(connect(4, 4, None).as_bytes(), &Fake);
        assert_eq!(out.close, Some(Close { code: 1008, reason: "unauthorized" }));
        assert_eq!(parsed(&out.frames[0])["error"]["code"], "AUTH_TOKEN_MISSING");
    }

    /// PROTO-6: the handshake timeout closes 1008 only before authentication.
    #[test]
    fn proto6_handshake_timeout() {
        assert_eq!(session().on_handshake_timeout().close, Some(Close { code: 1008, reason: "handshake timeout" }));
        assert_eq!(ready().on_handshake_timeout(), Outcome::default());
    }

    /// PROTO-7: frame limits: 64 KiB before auth, 1 MiB after; over closes 1009.
    #[test]
    fn proto7_frame_limits() {
        let big = vec![b' '; MAX_PREAUTH_FRAME_BYTES + 1];
        assert_eq!(session().on_frame(&big, &Fake).close, Some(Close { code: 1009, reason: "frame too large" }));
        let mut s = ready();
        let out = s.on_frame(&big, &Fake);
        assert!(out.close.is_none(), "a 64 KiB + 1 frame is fine after auth");
        assert_eq!(parsed(&out.frames[0])["error"]["code"], "INVALID_REQUEST");
        let huge = vec![b' '; MAX_FRAME_BYTES + 1];
        assert_eq!(s.on_frame(&huge, &Fake).close, Some(Close { code: 1009, reason: "frame too large" }));
    }

    /// PROTO-8: methods after hello; unknown methods get METHOD_NOT_FOUND.
    #[test]
    fn proto8_methods() {
        let mut s = ready();
        let call = |s: &mut Session, method: &str| {
            let frame = json!({"type": "req", "id": "x", "method": method, "params": {}}).to_string();
            let out = s.on_frame(frame.as_bytes(), &Fake);
            assert!(out.close.is_none());
            parsed(&out.frames[0])
        };
        let health = call(&mut s, "health");
        assert_eq!(health["ok"], true);
        for field in [
            "ok",
            "ts",
            "durationMs",
            "channels",
            "channelOrder",
            "channelLabels",
            "heartbeatSeconds",
            "defaultAgentId",
            "agents",
            "sessions",
            "pid",
            "host",
            "port",
            "profile",
            "version",
            "uptimeMs",
            "connections",
            "clients",
        ] {
            assert!(health["payload"].get(field).is_some(), "health lacks {field}");
        }
        assert_eq!(health["payload"]["sessions"], json!({"path": "", "count": 0, "recent": []}));
        assert_eq!(call(&mut s, "status")["payload"]["url"], "ws://127.0.0.1:18789");
        assert!(call(&mut s, "system-presence")["payload"].is_array());
        assert_eq!(call(&mut s, "config.get")["payload"], json!({"port": 18789}));
        let unknown = call(&mut s, "nope");
        assert_eq!(unknown["ok"], false);
        assert_eq!(unknown["error"], json!({"code": "METHOD_NOT_FOUND", "message": "unknown method: nope"}));
        assert_eq!(call(&mut s, "connect")["error"]["code"], "INVALID_REQUEST");
    }

    /// PROTO-9: ticks and the shutdown event go to authenticated sessions only, with rising seq.
    #[test]
    fn proto9_tick_and_shutdown() {
        assert_eq!(session().on_tick(1), Outcome::default());
        let out = session().on_shutdown();
        assert!(out.frames.is_empty());
        assert_eq!(out.close, Some(Close { code: 1012, reason: "service restart" }));
        let mut s = ready();
        assert_eq!(parsed(&s.on_tick(5).frames[0]), json!({"type": "event", "event": "tick", "payload": {"ts": 5}, "seq": 1}));
        let out = s.on_shutdown();
        assert_eq!(
            parsed(&out.frames[0]),
            json!({"type": "event", "event": "shutdown", "payload": {"reason": "gateway stopping"}, "seq": 2})
        );
        assert_eq!(out.close, Some(Close { code: 1012, reason: "service restart" }));
    }

    /// PROTO-10: malformed frames get INVALID_REQUEST, with the id when it can be recovered.
    #[test]
    fn proto10_malformed_frames() {
        assert!(matches!(parse_frame(b"nope"), Err(BadFrame { id: None, error: FrameError::NotJson(_) })));
        assert_eq!(parse_frame(b"[]").unwrap_err().error, FrameError::NotObject);
        assert_eq!(
            parse_frame(br#"{"type":"event","id":"z"}"#).unwrap_err(),
            BadFrame { id: Some("z".into()), error: FrameError::NotRequest }
        );
        assert_eq!(parse_frame(br#"{"type":"req","id":5,"method":"x"}"#).unwrap_err().error, FrameError::BadId);
        assert_eq!(parse_frame(br#"{"type":"req","id":"q","method":""}"#).unwrap_err().error, FrameError::BadMethod);
        let mut s = ready();
        let out = s.on_frame(br#"{"type":"req","id":"q"}"#, &Fake);
        assert_eq!(parsed(&out.frames[0])["id"], "q");
        assert!(out.close.is_none());
        let out = s.on_frame(b"\xff\xfe", &Fake);
        assert_eq!(parsed(&out.frames[0])["id"], Value::Null);
    }

    fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(connect(4, 4, Some("secret")).into_bytes()),
            Just(connect(4, 4, Some("wrong")).into_bytes()),
            Just(connect(1, 2, Some("secret")).into_bytes()),
            Just(br#"{"type":"req","id":"h","method":"health"}"#.to_vec()),
            Just(br#"{"type":"req","id":"h","method":"bogus","params":[1]}"#.to_vec()),
            "[a-z{}\":,\\[\\] ]{0,40}".prop_map(String::into_bytes),
        ]
    }

    #[derive(Debug, Clone)]
    enum Input {
        Frame(Vec<u8>),
        Tick,
        Timeout,
        Oversize,
        Shutdown,
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            6 => arb_frame().prop_map(Input::Frame),
            1 => Just(Input::Tick),
            1 => Just(Input::Timeout),
            1 => Just(Input::Oversize),
            1 => Just(Input::Shutdown),
        ]
    }

    proptest! {
        /// PROTO-10: parse_frame never panics, and what it accepts is a req with id and method.
        #[test]
        fn proto10_parse_frame_total(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(req) = parse_frame(&bytes) {
                prop_assert!(!req.id.is_empty() && !req.method.is_empty());
            }
        }

        /// PROTO-11: the handshake state machine: every frame sent is JSON; nothing but the
        /// challenge precedes authentication except error responses; a close is final; methods
        /// are served only once authenticated, by a connect with the right token and range.
        #[test]
        fn proto11_session_state_machine(inputs in proptest::collection::vec(arb_input(), 0..24)) {
            let mut s = session();
            let mut last_seq = 0;
            for input in inputs {
                let before = s.phase();
                let out = match input {
                    Input::Frame(bytes) => s.on_frame(&bytes, &Fake),
                    Input::Tick => s.on_tick(1),
                    Input::Timeout => s.on_handshake_timeout(),
                    Input::Oversize => s.on_oversize(),
                    Input::Shutdown => s.on_shutdown(),
                };
                if before == Phase::Closed {
                    prop_assert_eq!(&out, &Outcome::default());
                }
                for frame in &out.frames {
                    let v: Value = serde_json::from_str(frame).unwrap();
                    if before == Phase::AwaitingConnect {
                        prop_assert_eq!(&v["type"], "res");
                        prop_assert!(v["ok"] == true || v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()));
                    }
                    if let Some(seq) = v.get("seq").and_then(Value::as_u64) {
                        prop_assert!(seq > last_seq);
                        last_seq = seq;
                    }
                }
                if out.authenticated {
                    prop_assert_eq!(before, Phase::AwaitingConnect);
                    prop_assert_eq!(s.phase(), Phase::Ready);
                }
                if let Some(close) = out.close {
                    prop_assert!([1002, 1008, 1009, 1012].contains(&close.code));
                    prop_assert_eq!(s.phase(), Phase::Closed);
                    prop_assert!(before != Phase::Ready || close.code == 1009 || close.code == 1012);
                }
                if before == Phase::AwaitingConnect && s.phase() == Phase::AwaitingConnect {
                    prop_assert!(out.frames.is_empty());
                }
            }
        }
    }
}
