//! Serving on the held listener: HTTP health probes and WebSocket clients, and a clean
//! broadcast-and-drain shutdown.
//!
//! [`run`] takes an already-bound listener (the lock, from [`crate::lock::bind`]) and serves
//! until the shutdown future completes. Then it stops accepting, tells every connection to
//! finish (WebSocket clients get a close frame, [`SHUTDOWN_CLOSE_CODE`] "service restart"),
//! waits until all have finished or the grace period has passed, and hands the listener
//! back, still open: the caller releases the lock by dropping it as its very last act.
//!
//! WebSocket connections speak the gateway protocol ([`crate::protocol`], `spec/protocol.md`):
//! the server sends `connect.challenge` on open and carries out what the I/O-free
//! [`Session`] decides. The front door ([`crate::front_door`]) admits connections within the
//! limits and checks the `Origin` of upgrades.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::frame_gate::GatedStream;
use crate::front_door::{self, Admission, Admit, ConnId, Limits, Token, TokenSource};
use crate::http::{self, Parsed, Route, Status};
use crate::lifecycle::{ConnectionGuard, Lifecycle, Phase, Release};
use crate::lock::WsUrl;
use crate::protocol::{self, GatewayView, LockView, Presence, Session};
use crate::throttle::Throttle;

/// The close code every WebSocket client gets on shutdown (1012, "service restart").
pub const SHUTDOWN_CLOSE_CODE: u16 = 1012;
/// The close reason every WebSocket client gets on shutdown.
pub const SHUTDOWN_CLOSE_REASON: &str = "service restart";
/// How long shutdown waits for connections to finish before releasing the port anyway.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How long a client may take to send a complete HTTP request head.
pub(crate) const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest WebSocket message (and frame) the gateway accepts (after the handshake;
/// before it, [`protocol::MAX_PREAUTH_FRAME_BYTES`], which [`crate::frame_gate`] enforces from
/// each frame's header).
pub(crate) const MAX_WS_MESSAGE_BYTES: usize = protocol::MAX_FRAME_BYTES;
/// Initial read buffer of a WebSocket connection (tungstenite's default is 128 KiB, zero-filled
/// before every read: 1,000 clients made a shutdown cost 40 ms of memset). It grows as needed.
pub(crate) const WS_READ_BUFFER_BYTES: usize = 4 * 1024;

const _: () = assert!(SHUTDOWN_CLOSE_CODE == protocol::CLOSE_SERVICE_RESTART);

/// Settings of the serving loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Upper bound of a graceful shutdown: connections still open then are abandoned.
    pub shutdown_grace: Duration,
    /// Upper bound for receiving a request head.
    pub head_timeout: Duration,
    /// Time a WebSocket client has, from the upgrade, to complete `connect`.
    pub handshake_timeout: Duration,
    /// Interval of `tick` events to authenticated clients.
    pub tick_interval: Duration,
    /// Connection limits.
    pub limits: Limits,
    /// Browser origins allowed to upgrade; an upgrade with any other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    /// Host names served besides loopback names and addresses and the bound address (DOOR-7).
    pub allowed_hosts: Vec<String>,
    /// The gateway token; `None` refuses every `connect`.
    pub token: Option<Token>,
    /// Where the token came from (reported by `config.get`, never the token itself).
    pub token_source: Option<TokenSource>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            handshake_timeout: Duration::from_millis(protocol::DEFAULT_HANDSHAKE_TIMEOUT_MS),
            tick_interval: Duration::from_millis(protocol::DEFAULT_TICK_INTERVAL_MS),
            limits: Limits::default(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            token: None,
            token_source: None,
        }
    }
}

/// What the gateway reports about itself (health body).
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    /// The address actually held (real port when 0 was asked for).
    pub addr: SocketAddr,
    /// This process's id.
    pub pid: u32,
    /// The crate version.
    pub version: &'static str,
    /// When the lock was taken.
    pub started: Instant,
    /// The profile it runs under (`None`: no profile), reported as `"profile"` (issue 4).
    pub profile: Option<String>,
}

impl GatewayInfo {
    /// Info for this process holding `addr`, started now.
    pub fn new(addr: SocketAddr) -> Self {
        GatewayInfo { addr, pid: std::process::id(), version: env!("CARGO_PKG_VERSION"), started: Instant::now(), profile: None }
    }
}

/// What [`run`] hands back once shutdown is complete.
#[derive(Debug)]
pub struct Stopped {
    /// The listener, still open: dropping it releases the lock.
    pub listener: TcpListener,
    /// Connections still open at the grace deadline, given up.
    pub abandoned: usize,
}

struct Shared {
    info: GatewayInfo,
    config: ServerConfig,
    /// `crate::sync`'s `Arc` (std's, or loom's under `--cfg gateway_loom`, where this module
    /// must still compile although only the lifecycle core is exercised).
    lifecycle: crate::sync::Arc<Lifecycle>,
    /// Connection limits; each admitted connection's handle wakes it when it is evicted.
    admission: Mutex<Admission<Arc<Notify>>>,
    /// Authenticated WebSocket clients by connection id.
    clients: Mutex<BTreeMap<String, Presence>>,
    /// Failed authentication, counted for every client alike (DOOR-8).
    throttle: Mutex<Throttle>,
}

/// One admitted connection's place in the front door's books; freed on drop.
struct Slot {
    shared: Arc<Shared>,
    id: ConnId,
    evicted: Arc<Notify>,
    conn_id: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.admission.lock().unwrap().finish(self.id);
        if let Some(conn_id) = &self.conn_id {
            self.shared.clients.lock().unwrap().remove(conn_id);
        }
    }
}

/// Serves `listener` until `shutdown` completes, then drains and returns the listener unreleased.
pub async fn run(listener: TcpListener, info: GatewayInfo, config: ServerConfig, shutdown: impl Future<Output = ()>) -> Stopped {
    let drained = Arc::new(Notify::new());
    let wake = Arc::clone(&drained);
    let admission = Mutex::new(Admission::new(config.limits));
    let throttle = Mutex::new(Throttle::new(Instant::now()));
    let shared = Arc::new(Shared {
        info,
        config,
        lifecycle: Lifecycle::new(move || wake.notify_one()),
        admission,
        clients: Mutex::default(),
        throttle,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Lifecycle::admit(&shared.lifecycle) {
                    Some(guard) => match front_door_admit(&shared) {
                        Some(slot) => { tokio::spawn(serve_connection(stream, stop_rx.clone(), guard, slot)); }
                        None => drop(stream),
                    },
                    None => drop(stream),
                },
                // Out of descriptors or a connection reset before accept: the listener stays
                // healthy. Pause briefly so that a persistent EMFILE is not a busy loop.
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    shared.lifecycle.begin_shutdown();
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
    loop {
        match shared.lifecycle.try_release(tokio::time::Instant::now() >= deadline) {
            Release::Now { abandoned } => return Stopped { listener, abandoned },
            // `run` is the only caller of `try_release`, so this arm is never taken.
            Release::AlreadyReleased => return Stopped { listener, abandoned: 0 },
            Release::NotYet => tokio::select! {
                () = drained.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            },
        }
    }
}

/// Books a newly accepted connection with the front door; `None`: refuse it (every slot is an
/// authenticated client). Evicts the oldest unauthenticated connection if a limit is reached.
fn front_door_admit(shared: &Arc<Shared>) -> Option<Slot> {
    let evicted = Arc::new(Notify::new());
    let decision = shared.admission.lock().unwrap().admit(Arc::clone(&evicted));
    match decision {
        Admit::Yes { id, evicted: old } => {
            if let Some(old) = old {
                old.notify_one();
            }
            Some(Slot { shared: Arc::clone(shared), id, evicted, conn_id: None })
        }
        Admit::No => None,
    }
}

/// Why reading a request head ended without a head.
enum HeadRead {
    /// The peer closed or the socket failed: nothing to answer.
    Gone,
    /// The head was refused: answer with this status.
    Refused(Status),
}

/// Reads one request head into `buf` (cancel-safe: bytes read stay in `buf`); returns it with
/// any bytes read past it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(http::RequestHead, Vec<u8>), HeadRead> {
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadRead::Gone)?;
        if n == 0 {
            return Err(HeadRead::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(buf) {
            Ok(Parsed::Complete { head, len }) => return Ok((head, buf.split_off(len))),
            Ok(Parsed::Partial) => {}
            Err(err) => return Err(HeadRead::Refused(err.status())),
        }
    }
}

/// Serves one accepted connection; `_guard` keeps it counted as open until this returns.
async fn serve_connection(mut stream: TcpStream, mut stop: watch::Receiver<bool>, _guard: ConnectionGuard, mut slot: Slot) {
    // Frames go out at once: without this, the close frame that follows the `shutdown` event
    // waits for the client's delayed ACK (Nagle), 40 ms per client at shutdown.
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(&slot.shared);
    let evicted = Arc::clone(&slot.evicted);
    let mut buf = Vec::with_capacity(1024);
    let first = {
        let read = tokio::time::timeout(shared.config.head_timeout, read_head(&mut stream, &mut buf));
        tokio::pin!(read);
        tokio::select! {
            read = &mut read => Some(read),
            // Shutdown began before the request was complete (see below).
            _ = stop.wait_for(|stopping| *stopping) => None,
            // Evicted to make room for a newcomer (DOOR-4).
            () = evicted.notified() => return,
        }
    };
    let head = match first {
        Some(read) => read,
        // A connection that sent nothing is dropped at once: idle sockets never delay shutdown.
        None if buf.is_empty() => return,
        // One that sent part of a request may finish it within the grace period (a readiness
        // probe then gets 503).
        None => match tokio::time::timeout(shared.config.shutdown_grace, read_head(&mut stream, &mut buf)).await {
            Ok(read) => Ok(read),
            Err(_) => return,
        },
    };
    let (head, leftover) = match head {
        Ok(Ok(head)) => head,
        Ok(Err(HeadRead::Gone)) => return,
        Ok(Err(HeadRead::Refused(status))) => return reply(&mut stream, &http::error_response(status)).await,
        Err(_elapsed) => return reply(&mut stream, &http::error_response(Status::RequestTimeout)).await,
    };
    // DOOR-7: a request under a name this gateway does not serve (DNS rebinding) gets no answer.
    if let Err(err) = crate::host_check::check(&head.hosts, head.http11, shared.info.addr.ip(), &shared.config.allowed_hosts) {
        tracing::debug!("refused request: {err}");
        return reply(&mut stream, &http::error_response(err.status())).await;
    }
    match http::route(&head) {
        Route::Health { head_only } => {
            let body = health_body(&shared).to_string();
            reply(&mut stream, &http::response(Status::Ok, "application/json", body.as_bytes(), head_only)).await;
        }
        Route::Ready { head_only } => {
            let (status, body) = http::readiness(shared.lifecycle.phase() == Phase::Serving);
            reply(&mut stream, &http::response(status, "application/json", body.as_bytes(), head_only)).await;
        }
        // An upgrade completed while draining: no new WebSocket session during shutdown.
        Route::Upgrade { .. } if shared.lifecycle.phase() != Phase::Serving => {
            reply(&mut stream, &http::error_response(Status::ServiceUnavailable)).await;
        }
        Route::Upgrade { .. } if !front_door::origin_allowed(head.origin.as_deref(), &shared.config.allowed_origins) => {
            reply(&mut stream, &http::error_response(Status::Forbidden)).await;
        }
        Route::Upgrade { accept_key } => {
            if stream.write_all(&http::upgrade_response(&accept_key)).await.is_err() {
                return;
            }
            // tungstenite's limits cannot change on a live stream: it gets an authenticated
            // client's, and the gate refuses larger frames from their header until `connect`
            // succeeds (PROTO-7). The bytes read past the request head pass the gate too.
            let config = WebSocketConfig::default()
                .read_buffer_size(WS_READ_BUFFER_BYTES)
                .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
            let gated = GatedStream::new(stream, leftover, protocol::MAX_PREAUTH_FRAME_BYTES);
            let ws = WebSocketStream::from_raw_socket(gated, Role::Server, Some(config)).await;
            serve_websocket(ws, &shared, stop, &mut slot).await;
        }
        Route::Error(status) => reply(&mut stream, &http::error_response(status)).await,
    }
}

/// Writes a complete response and closes the write side; errors mean the peer is gone.
async fn reply(stream: &mut TcpStream, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// The JSON body of `GET /healthz`.
fn health_body(shared: &Shared) -> serde_json::Value {
    let info = &shared.info;
    serde_json::json!({
        "ok": true,
        "status": "live",
        "pid": info.pid,
        "host": info.addr.ip().to_string(),
        "port": info.addr.port(),
        "version": info.version,
        "uptimeMs": info.started.elapsed().as_millis() as u64,
        "connections": shared.lifecycle.open_connections(),
        "profile": info.profile,
    })
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The gateway as a [`Session`] sees it.
struct View<'a>(&'a Shared);

impl GatewayView for View<'_> {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn token_matches(&self, presented: &str) -> bool {
        self.0.config.token.as_ref().is_some_and(|token| token.matches(presented))
    }

    fn lock_view(&self) -> LockView {
        let info = &self.0.info;
        LockView {
            pid: info.pid,
            host: info.addr.ip().to_string(),
            port: info.addr.port(),
            profile: info.profile.clone(),
            version: info.version.to_string(),
            uptime_ms: info.started.elapsed().as_millis() as u64,
            connections: self.0.lifecycle.open_connections(),
            clients: self.0.clients.lock().unwrap().len(),
        }
    }

    fn url(&self) -> String {
        WsUrl(self.0.info.addr).to_string()
    }

    fn presence(&self) -> Vec<Presence> {
        self.0.clients.lock().unwrap().values().cloned().collect()
    }

    fn config(&self) -> serde_json::Value {
        let config = &self.0.config;
        serde_json::json!({
            "host": self.0.info.addr.ip().to_string(),
            "port": self.0.info.addr.port(),
            "url": self.url(),
            "protocol": protocol::PROTOCOL_VERSION,
            "auth": {"mode": "token", "source": config.token_source.as_ref().map(TokenSource::kind)},
            "allowedOrigins": config.allowed_origins,
            "allowedHosts": config.allowed_hosts,
            "handshakeTimeoutMs": config.handshake_timeout.as_millis() as u64,
            "tickIntervalMs": config.tick_interval.as_millis() as u64,
            "headTimeoutMs": config.head_timeout.as_millis() as u64,
            "shutdownGraceMs": config.shutdown_grace.as_millis() as u64,
            "maxPayload": protocol::MAX_FRAME_BYTES,
            "maxPreauthPayload": protocol::MAX_PREAUTH_FRAME_BYTES,
            "maxConnections": config.limits.max_connections,
            "maxUnauthenticated": config.limits.max_unauthenticated,
        })
    }
}

/// Serves a WebSocket client with the gateway protocol until it leaves, the protocol closes
/// it, or shutdown begins (`shutdown` event to authenticated clients, then close 1012); a
/// close waits, at most the grace period, for the client's close in reply.
async fn serve_websocket(
    mut ws: WebSocketStream<GatedStream<TcpStream>>,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
    slot: &mut Slot,
) {
    let conn_id = uuid::Uuid::new_v4().to_string();
    let policy = protocol::Policy { tick_interval_ms: shared.config.tick_interval.as_millis() as u64 };
    let mut session = Session::new(conn_id.clone(), uuid::Uuid::new_v4().to_string(), policy);
    let view = View(shared);
    if ws.send(Message::text(session.challenge(now_ms()))).await.is_err() {
        return;
    }
    let handshake_deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let period = shared.config.tick_interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let evicted = Arc::clone(&slot.evicted);
    loop {
        let awaiting = session.phase() == protocol::Phase::AwaitingConnect;
        // The first frame of an unauthenticated client waits for its turn (DOOR-8).
        let mut first: Option<Vec<u8>> = None;
        let outcome = tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) if awaiting => { first = Some(text.as_bytes().to_vec()); protocol::Outcome::default() }
                Some(Ok(Message::Binary(bytes))) if awaiting => { first = Some(bytes.to_vec()); protocol::Outcome::default() }
                Some(Ok(Message::Text(text))) => session.on_frame(text.as_bytes(), &view),
                Some(Ok(Message::Binary(bytes))) => session.on_frame(&bytes, &view),
                // Pings are answered by tungstenite; a client's close is answered by it too.
                Some(Ok(_)) => continue,
                // Over tungstenite's limit, or over the gate's before `connect` succeeded.
                Some(Err(WsError::Capacity(_))) => session.on_oversize(),
                Some(Err(_)) if ws.get_ref().refused().is_some() => session.on_oversize(),
                // RFC 6455 §8.1, §7.4.1: bad UTF-8 closes with 1007, protocol violations with 1002 (PROTO-16).
                Some(Err(WsError::Utf8(_))) => violation(protocol::CLOSE_INVALID_DATA, protocol::REASON_INVALID_UTF8),
                Some(Err(WsError::Protocol(_))) => violation(protocol::CLOSE_PROTOCOL, protocol::REASON_PROTOCOL_ERROR),
                Some(Err(_)) | None => return,
            },
            () = tokio::time::sleep_until(handshake_deadline), if awaiting => session.on_handshake_timeout(),
            _ = tick.tick(), if !awaiting => session.on_tick(now_ms()),
            _ = stop.wait_for(|stopping| *stopping) => session.on_shutdown(),
            () = evicted.notified(), if awaiting => return,
        };
        let outcome = match first {
            Some(bytes) => match wait_turn(shared, &mut stop, &evicted, handshake_deadline).await {
                Turn::Go => authenticate(shared, &mut session, &bytes, &view),
                Turn::Shutdown => session.on_shutdown(),
                Turn::Timeout => session.on_handshake_timeout(),
                Turn::Evicted => return,
            },
            None => outcome,
        };
        if outcome.authenticated {
            tracing::debug!(conn = %conn_id, client = ?session.presence().map(|p| &p.client.id), "client authenticated");
            if !shared.admission.lock().unwrap().authenticate(slot.id) {
                // Evicted while its connect was in flight: it never had a place.
                return;
            }
            // From the next frame on, an authenticated client's limit (tungstenite's) applies.
            ws.get_mut().lift();
            if let Some(presence) = session.presence() {
                shared.clients.lock().unwrap().insert(conn_id.clone(), presence.clone());
                slot.conn_id = Some(conn_id.clone());
            }
        }
        for frame in outcome.frames {
            if ws.send(Message::text(frame)).await.is_err() {
                return;
            }
        }
        if let Some(close) = outcome.close {
            tracing::debug!(conn = %conn_id, code = close.code, reason = close.reason, "closing WebSocket client");
            let too_big = close.code == protocol::CLOSE_TOO_BIG;
            let close = CloseFrame { code: CloseCode::from(close.code), reason: close.reason.into() };
            let drain = async move {
                if ws.send(Message::Close(Some(close))).await.is_err() {
                    return;
                }
                if too_big {
                    // The rest of the oversize frame is still arriving and is no WebSocket framing:
                    // discard raw bytes until the client closes, so that it is not reset mid-send
                    // and reads the close frame.
                    let mut stream = ws.into_inner().into_inner();
                    let mut sink = [0u8; 16 * 1024];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                } else {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            };
            let _ = tokio::time::timeout(shared.config.shutdown_grace, drain).await;
            return;
        }
    }
}

/// What ended an unauthenticated client's wait for its turn (DOOR-8).
enum Turn {
    /// Its turn came: look at its frame.
    Go,
    /// Shutdown began meanwhile.
    Shutdown,
    /// The handshake timeout passed meanwhile.
    Timeout,
    /// It was evicted to make room (DOOR-4).
    Evicted,
}

/// Waits for the throttle's turn of an unauthenticated client's first frame (no wait unless failed
/// authentication engaged it), still ending at shutdown, the handshake deadline or eviction.
async fn wait_turn(shared: &Shared, stop: &mut watch::Receiver<bool>, evicted: &Notify, deadline: tokio::time::Instant) -> Turn {
    let wait = shared.throttle.lock().unwrap().turn(Instant::now());
    if wait.is_zero() {
        return Turn::Go;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => Turn::Go,
        _ = stop.wait_for(|stopping| *stopping) => Turn::Shutdown,
        () = tokio::time::sleep_until(deadline) => Turn::Timeout,
        () = evicted.notified() => Turn::Evicted,
    }
}

/// Hands an unauthenticated client's frame to its session and counts a failed `connect` (a
/// missing or wrong token) with the throttle, logging once per window when it is engaged.
fn authenticate(shared: &Shared, session: &mut Session, bytes: &[u8], view: &View<'_>) -> protocol::Outcome {
    let outcome = session.on_frame(bytes, view);
    let failed = outcome.close.as_ref().is_some_and(|close| close.reason == protocol::REASON_UNAUTHORIZED);
    if let Some(engaged) = shared.throttle.lock().unwrap().record(Instant::now(), failed) {
        tracing::warn!(
            "authentication throttled: {} failed connect(s) since the last notice; further attempts wait their turn, {} ms apart",
            engaged.failures,
            crate::throttle::SPACING.as_millis()
        );
    }
    outcome
}

/// The outcome of a WebSocket protocol violation (PROTO-16): close with `code` and `reason`.
fn violation(code: u16, reason: &'static str) -> protocol::Outcome {
    protocol::Outcome { frames: Vec::new(), close: Some(protocol::Close { code, reason }), authenticated: false }
}
