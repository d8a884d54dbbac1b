//! Serving on the held listener: HTTP health probes and WebSocket clients, and a clean
//! broadcast-and-drain shutdown.
//!
//! [`run`] takes an already-bound listener (the lock, from [`crate::lock::bind`]) and serves
//! until the shutdown future completes. Then it stops accepting, tells every connection to
//! finish (WebSocket clients get a close frame, [`SHUTDOWN_CLOSE_CODE`] "service restart"),
//! waits until all have finished or the grace period has passed, and hands the listener
//! back, still open: the caller releases the lock by dropping it as its very last act.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::http::{self, Parsed, Route, Status};
use crate::lifecycle::{ConnectionGuard, Lifecycle, Release};

/// The close code every WebSocket client gets on shutdown (1012, "service restart").
pub const SHUTDOWN_CLOSE_CODE: u16 = 1012;
/// The close reason every WebSocket client gets on shutdown.
pub const SHUTDOWN_CLOSE_REASON: &str = "service restart";
/// How long shutdown waits for connections to finish before releasing the port anyway.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How long a client may take to send a complete HTTP request head.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest WebSocket message (and frame) the gateway accepts.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;
/// Initial read buffer of a WebSocket connection (tungstenite's default is 128 KiB, zero-filled
/// before every read: 1,000 clients made a shutdown cost 40 ms of memset). It grows as needed.
pub const WS_READ_BUFFER_BYTES: usize = 4 * 1024;

/// Settings of the serving loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Upper bound of a graceful shutdown: connections still open then are abandoned.
    pub shutdown_grace: Duration,
    /// Upper bound for receiving a request head.
    pub head_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { shutdown_grace: DEFAULT_SHUTDOWN_GRACE, head_timeout: DEFAULT_HEAD_TIMEOUT }
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
}

impl GatewayInfo {
    /// Info for this process holding `addr`, started now.
    pub fn new(addr: SocketAddr) -> Self {
        GatewayInfo { addr, pid: std::process::id(), version: env!("CARGO_PKG_VERSION"), started: Instant::now() }
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
    lifecycle: Arc<Lifecycle>,
}

/// Serves `listener` until `shutdown` completes, then drains and returns the listener unreleased.
pub async fn run(listener: TcpListener, info: GatewayInfo, config: ServerConfig, shutdown: impl Future<Output = ()>) -> Stopped {
    let drained = Arc::new(Notify::new());
    let wake = Arc::clone(&drained);
    let shared = Arc::new(Shared { info, config, lifecycle: Lifecycle::new(move || wake.notify_one()) });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match shared.lifecycle.admit() {
                    Some(guard) => { tokio::spawn(serve_connection(stream, Arc::clone(&shared), stop_rx.clone(), guard)); }
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

/// Why reading a request head ended without a head.
enum HeadRead {
    /// The peer closed or the socket failed: nothing to answer.
    Gone,
    /// The head was refused: answer with this status.
    Refused(Status),
}

/// Reads one request head; returns it with any bytes read past it.
async fn read_head(stream: &mut TcpStream) -> Result<(http::RequestHead, Vec<u8>), HeadRead> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadRead::Gone)?;
        if n == 0 {
            return Err(HeadRead::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf) {
            Ok(Parsed::Complete { head, len }) => return Ok((head, buf.split_off(len))),
            Ok(Parsed::Partial) => {}
            Err(err) => return Err(HeadRead::Refused(err.status())),
        }
    }
}

/// Serves one accepted connection; `_guard` keeps it counted as open until this returns.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>, _guard: ConnectionGuard) {
    let read = tokio::time::timeout(shared.config.head_timeout, read_head(&mut stream));
    let head = tokio::select! {
        read = read => read,
        // Shutdown began before the request was complete: drop the connection.
        _ = stop.wait_for(|stopping| *stopping) => return,
    };
    let (head, leftover) = match head {
        Ok(Ok(head)) => head,
        Ok(Err(HeadRead::Gone)) => return,
        Ok(Err(HeadRead::Refused(status))) => return reply(&mut stream, &http::error_response(status)).await,
        Err(_elapsed) => return reply(&mut stream, &http::error_response(Status::RequestTimeout)).await,
    };
    match http::route(&head) {
        Route::Health { head_only } => {
            let body = health_body(&shared).to_string();
            reply(&mut stream, &http::response(Status::Ok, "application/json", body.as_bytes(), head_only)).await;
        }
        Route::Upgrade { accept_key } => {
            if stream.write_all(&http::upgrade_response(&accept_key)).await.is_err() {
                return;
            }
            let config = WebSocketConfig::default()
                .read_buffer_size(WS_READ_BUFFER_BYTES)
                .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
            let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
            serve_websocket(ws, &shared, stop).await;
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
    })
}

/// Serves a WebSocket client until it leaves or shutdown begins; then sends the close frame
/// and waits, at most the grace period, for the client's close in reply.
async fn serve_websocket(mut ws: WebSocketStream<TcpStream>, shared: &Shared, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            message = ws.next() => match message {
                // Data frames carry the gateway protocol (not part of the lock); pings are
                // answered by tungstenite itself.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
    }
    let close = CloseFrame { code: CloseCode::from(SHUTDOWN_CLOSE_CODE), reason: SHUTDOWN_CLOSE_REASON.into() };
    let drain = async {
        if ws.send(Message::Close(Some(close))).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(shared.config.shutdown_grace, drain).await;
}
