//! `gateway run`: take the lock, announce it, serve, and release it last.
//!
//! The order is the contract (`spec/invariants.md`): the bind comes before anything
//! observable; the ready line comes after the bind and after the signal handlers are in
//! place; releasing the listener is the last thing the process does.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::front_door::{self, Limits, TokenConfig, TokenError, TokenSource, UnauthenticatedBind};
use crate::holder::{self, Holder};
use crate::lock::{GatewayLockError, WsUrl, DEFAULT_HOST, DEFAULT_PORT};
use crate::profile::{self, StateDirError};
use crate::server::{self, GatewayInfo, ServerConfig};
use crate::takeover::{self, Takeover};
use crate::{notify, protocol};

/// What [`run`] is asked to do: the settings of `gateway run`, free of any command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// The address to hold (port 0: the system chooses).
    pub addr: SocketAddr,
    /// The gateway token, as configured before the bind.
    pub token: TokenConfig,
    /// Browser origins allowed to open WebSocket connections.
    pub allowed_origins: Vec<String>,
    /// Host names (or addresses) a request's `Host` may name besides loopback names and
    /// addresses and the bound address (DOOR-7); any other gets 421.
    pub allowed_hosts: Vec<String>,
    /// Time a WebSocket client has, from the upgrade, to complete the `connect` handshake.
    pub handshake_timeout: Duration,
    /// Interval of the `tick` event sent to authenticated clients.
    pub tick_interval: Duration,
    /// Connection limits.
    pub limits: Limits,
    /// What to do when the port is held (`--wait`, `--replace`).
    pub takeover: Takeover,
    /// The profile to run under (its state directory is taken once the port is held).
    pub profile: Option<String>,
}

impl Default for RunSettings {
    /// `127.0.0.1:18789`, a generated token, no browser origins, no extra hosts, the protocol's default timings.
    fn default() -> Self {
        RunSettings {
            addr: SocketAddr::new(DEFAULT_HOST, DEFAULT_PORT),
            token: TokenConfig::None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            handshake_timeout: Duration::from_millis(protocol::DEFAULT_HANDSHAKE_TIMEOUT_MS),
            tick_interval: Duration::from_millis(protocol::DEFAULT_TICK_INTERVAL_MS),
            limits: Limits::default(),
            takeover: Takeover::default(),
            profile: None,
        }
    }
}

impl RunSettings {
    /// The host to listen on.
    pub fn host(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// What [`run`] tells its caller on the way, for it to show (the library prints nothing).
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// The lock was refused ([`GatewayLockError::AlreadyListening`]): show it now. Who holds the
    /// port is looked up next (within 200 ms) and returned in [`RunError::Refused`].
    Refused(&'a GatewayLockError),
    /// No token was given: one was generated and stored in this file (never the token itself).
    TokenGenerated(&'a Path),
    /// No token was given: the one an earlier start stored in this file is used again (DOOR-6).
    TokenStored(&'a Path),
    /// The lock is held and the signal handlers are in place: announce `listening on URL`
    /// ([`ready_line`]) now. The service manager is told right after.
    Ready(SocketAddr),
}

/// Why `gateway run` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The port is held by another listener (ERR-1); `holder` says who (`OPS-1`).
    #[error("GatewayLockError: {error}")]
    Refused {
        /// The refusal ([`GatewayLockError::AlreadyListening`]).
        error: GatewayLockError,
        /// Who holds the port, looked up within a bound after the refusal.
        holder: Box<Holder>,
    },
    /// The lock could not be taken for any other reason ([`GatewayLockError::Bind`]).
    #[error("GatewayLockError: {0}")]
    Lock(GatewayLockError),
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

/// The error of a failed bind: a refusal is told at once ([`RunEvent::Refused`]), then carries who
/// holds the port, looked up within 200 ms (`OPS-1`); any other failure is [`RunError::Lock`].
fn lock_error(error: GatewayLockError, on_event: &mut impl FnMut(RunEvent<'_>)) -> RunError {
    match error {
        GatewayLockError::AlreadyListening { url } => {
            on_event(RunEvent::Refused(&error));
            RunError::Refused { holder: Box::new(holder::after_refusal(url.0)), error }
        }
        other => RunError::Lock(other),
    }
}

/// Runs the gateway until a shutdown signal (`SIGTERM`, `SIGINT`, `SIGHUP`); returns once the
/// port is released. `on_event` is called with what a command line shows ([`RunEvent`]).
pub fn run(settings: &RunSettings, mut on_event: impl FnMut(RunEvent<'_>)) -> Result<(), RunError> {
    // 0. The front door's usage-level refusal (DOOR-2): decided from the settings alone, it
    //    touches nothing, so it may precede the bind (LOCK-3 still holds).
    front_door::check_bind(settings.host(), &settings.token)?;

    // 1. The lock, before anything observable. `--wait`/`--replace` act only once a first bind
    //    has been refused (`OPS-4`, `OPS-5`).
    let listener = takeover::acquire(settings.addr, settings.takeover).map_err(|e| lock_error(e, &mut on_event))?;
    let addr = listener.local_addr().map_err(RunError::Runtime)?;
    // 1b. Only now that the port is held: the profile's state directory, locked for our lifetime
    //     (`OPS-6`), and the ephemeral-range warning (`OPS-1`).
    let state_dir = match &settings.profile {
        Some(name) => Some(profile::take_state_dir(name)?),
        None => None,
    };
    if let Some(warning) = holder::check_ephemeral_range(settings.addr.port()) {
        tracing::warn!("{warning}");
    }

    // 1c. The token in force and the protocol's settings (issue 6, DOOR-5).
    let config = protocol_config(settings, state_dir.as_ref().map(|d| d.path.as_path()), &mut on_event)?;

    // 2. A single-threaded runtime: the gateway's work is tiny, and one thread starts fastest.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().map_err(RunError::Runtime)?;
    let entered = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(RunError::Runtime)?;
    let signal = shutdown_signal().map_err(RunError::Runtime)?;
    let shutdown = async {
        signal.await;
        notify::stopping();
    };

    // 3. Announce: the ready line, exactly once.
    on_event(RunEvent::Ready(addr));
    notify::ready();
    tracing::info!(pid = std::process::id(), "gateway holds {}", WsUrl(addr));

    // 4. Serve until a signal, then drain.
    let stopped = runtime.block_on(server::run(
        listener,
        GatewayInfo { profile: settings.profile.clone(), ..GatewayInfo::new(addr) },
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
/// telling where — never the token itself; DOOR-6: one per profile, `profile_dir` is the
/// profile's state directory) and the protocol's settings. Called only once the port is held.
fn protocol_config(
    settings: &RunSettings,
    profile_dir: Option<&Path>,
    on_event: &mut impl FnMut(RunEvent<'_>),
) -> Result<ServerConfig, RunError> {
    let (token, token_source) = front_door::resolve_token(&settings.token, profile_dir)?;
    match &token_source {
        TokenSource::Generated(path) => on_event(RunEvent::TokenGenerated(path)),
        TokenSource::Stored(path) => on_event(RunEvent::TokenStored(path)),
        TokenSource::Value | TokenSource::File(_) => {}
    }
    Ok(ServerConfig {
        handshake_timeout: settings.handshake_timeout,
        tick_interval: settings.tick_interval,
        limits: settings.limits,
        allowed_origins: settings.allowed_origins.clone(),
        allowed_hosts: settings.allowed_hosts.clone(),
        token: Some(token),
        token_source: Some(token_source),
        ..ServerConfig::default()
    })
}
