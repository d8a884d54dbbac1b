//! `gateway run`: take the lock, announce it, serve, and release it last.
//!
//! The order is the contract (`spec/invariants.md`): the bind comes before anything
//! observable; the ready line comes after the bind and after the signal handlers are in
//! place; releasing the listener is the last thing the process does.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::front_door::{self, Limits, TokenConfig, TokenError, TokenSource, UnauthenticatedBind};
use crate::lock::{GatewayLockError, WsUrl};
use crate::profile::{self, StateDirError};
use crate::server::{self, GatewayInfo, ServerConfig};
use crate::takeover::{self, Takeover};
use crate::{notify, probe};

/// Why `gateway run` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The lock could not be taken.
    #[error("GatewayLockError: {0}")]
    Lock(#[from] GatewayLockError),
    /// The port was taken but the profile's state directory could not be (issue 4, `OPS-6`).
    #[error("StateDirError: {0}")]
    StateDir(#[from] StateDirError),
    /// The lock was taken but the runtime could not be set up.
    #[error("gateway runtime failed: {0}")]
    Runtime(#[source] std::io::Error),
    /// A non-loopback bind without a token: refused before the bind (exit 7, DOOR-2).
    #[error("{0}")]
    Unauthenticated(#[from] UnauthenticatedBind),
    /// The lock was taken but the token could not be put in force (exit 1, DOOR-5).
    #[error("{0}")]
    Token(#[from] TokenError),
}

/// The line printed on stdout once the listener is bound: `listening on ws://HOST:PORT`.
pub fn ready_line(addr: SocketAddr) -> String {
    format!("listening on {}", WsUrl(addr))
}

/// Runs the gateway until a shutdown signal; returns once the port is released.
pub fn run(args: &RunArgs) -> Result<(), RunError> {
    // 0. The front door's usage-level refusal (DOOR-2): decided from flags and environment
    //    alone, it touches nothing, so it may precede the bind (LOCK-3 still holds).
    let token_config = args.token_config();
    front_door::check_bind(args.host, &token_config)?;

    // 1. The lock, before anything observable. `--wait`/`--replace` act only once a first bind
    //    has been refused (`OPS-4`, `OPS-5`).
    let how = Takeover { wait: args.ops.wait, replace: args.ops.replace };
    let listener = takeover::acquire(SocketAddr::new(args.host, args.port), how)?;
    let addr = listener.local_addr().map_err(RunError::Runtime)?;
    // 1b. Only now that the port is held: the profile's state directory, locked for our lifetime
    //     (`OPS-6`), and the ephemeral-range warning (`OPS-1`).
    let state_dir = match &args.ops.profile {
        Some(name) => Some(profile::take_state_dir(name)?),
        None => None,
    };
    if let Some(warning) = probe::check_ephemeral_range(args.port) {
        tracing::warn!("{warning}");
    }

    // 1c. The token in force and the protocol's settings (issue 6, DOOR-5).
    let config = protocol_config(args, &token_config, state_dir.as_ref().map(|d| d.path.as_path()))?;

    // 2. A single-threaded runtime: the gateway's work is tiny, and one thread starts fastest.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().map_err(RunError::Runtime)?;
    let entered = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(RunError::Runtime)?;
    let signal = shutdown_signal().map_err(RunError::Runtime)?;
    let shutdown = async {
        signal.await;
        notify::stopping();
    };

    // 3. Announce: the ready line, exactly once, flushed.
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", ready_line(addr));
        let _ = stdout.flush();
    }
    notify::ready();
    tracing::info!(pid = std::process::id(), "gateway holds {}", WsUrl(addr));

    // 4. Serve until a signal, then drain.
    let stopped = runtime.block_on(server::run(
        listener,
        GatewayInfo { profile: args.ops.profile.clone(), ..GatewayInfo::new(addr) },
        config,
        shutdown,
    ));
    if stopped.abandoned > 0 {
        tracing::warn!("{} connection(s) did not close within the grace period", stopped.abandoned);
    }
    tracing::info!("releasing {}", WsUrl(addr));

    // 5. Close what is left (connections abandoned at the deadline go with the runtime), unlock the
    //    state directory (a successor that takes the port must find it free), then release the
    //    lock as the last act. Nothing is served or written after this.
    let listener = stopped.listener.into_std().map_err(RunError::Runtime)?;
    drop(entered);
    drop(runtime);
    drop(state_dir);
    drop(listener);
    Ok(())
}

/// Completes on the first `SIGTERM`, `SIGINT` or `SIGHUP` (Ctrl-C elsewhere). The handlers are
/// installed when this is called, before the ready line, so no signal after it is missed.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            _ = hangup.recv() => "SIGHUP",
        };
        tracing::info!("{name}: shutting down");
    })
}

/// Completes on Ctrl-C (non-Unix platforms).
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: shutting down");
    })
}

/// The token in force (DOOR-5: read `--token-file`, or generate one and store it privately,
/// printing where — never the token itself) and the protocol's settings from the flags.
/// Called only once the port is held.
fn protocol_config(args: &RunArgs, token_config: &TokenConfig, profile_dir: Option<&std::path::Path>) -> Result<ServerConfig, RunError> {
    let (token, token_source) = front_door::resolve_token(token_config, profile_dir)?;
    match &token_source {
        TokenSource::Generated(path) => eprintln!("gateway: no token given; generated one and stored it in {} (mode 0600)", path.display()),
        TokenSource::Stored(path) => eprintln!("gateway: no token given; using the one stored in {} (mode 0600)", path.display()),
        TokenSource::Value | TokenSource::File(_) => {}
    }
    Ok(ServerConfig {
        handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        tick_interval: Duration::from_millis(args.tick_interval_ms),
        limits: Limits { max_connections: args.max_connections as usize, max_unauthenticated: args.max_unauthenticated as usize },
        allowed_origins: args.allow_origins.clone(),
        allowed_hosts: args.allow_hosts.clone(),
        token: Some(token),
        token_source: Some(token_source),
        ..ServerConfig::default()
    })
}
