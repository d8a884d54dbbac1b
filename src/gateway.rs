//! `gateway run`: take the lock, announce it, serve, and release it last.
//!
//! The order is the contract (`spec/invariants.md`): the bind comes before anything
//! observable; the ready line comes after the bind and after the signal handlers are in
//! place; releasing the listener is the last thing the process does.

use std::io::Write;
use std::net::SocketAddr;

use tokio::signal::unix::{signal, SignalKind};

use crate::cli::RunArgs;
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
}

/// The line printed on stdout once the listener is bound: `listening on ws://HOST:PORT`.
pub fn ready_line(addr: SocketAddr) -> String {
    format!("listening on {}", WsUrl(addr))
}

/// Runs the gateway until a shutdown signal; returns once the port is released.
pub fn run(args: &RunArgs) -> Result<(), RunError> {
    // 1. The lock, before anything observable. `--wait`/`--replace` act only once a first bind
    //    has been refused (`OPS-4`, `OPS-5`).
    let how = Takeover { wait: args.ops.wait, replace: args.ops.replace };
    let listener = takeover::acquire(SocketAddr::new(args.host, args.port), how)?;
    let addr = listener.local_addr().map_err(RunError::Runtime)?;
    // 1b. Only now that the port is held: the profile's state directory, locked for our lifetime
    //     (`OPS-6`), and the ephemeral-range warning (`OPS-1`).
    let _state_dir = match &args.ops.profile {
        Some(name) => Some(profile::take_state_dir(name)?),
        None => None,
    };
    if let Some(warning) = probe::check_ephemeral_range(args.port) {
        tracing::warn!("{warning}");
    }

    // 2. A single-threaded runtime: the gateway's work is tiny, and one thread starts fastest.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().map_err(RunError::Runtime)?;
    let _entered = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(RunError::Runtime)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;

    // 3. Announce: the ready line, exactly once, flushed.
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", ready_line(addr));
        let _ = stdout.flush();
    }
    notify::ready();
    tracing::info!(pid = std::process::id(), "gateway holds {}", WsUrl(addr));

    // 4. Serve until a signal, then drain.
    let shutdown = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            _ = hangup.recv() => "SIGHUP",
        };
        tracing::info!("{name}: shutting down");
        notify::stopping();
    };
    let stopped = runtime.block_on(server::run(
        listener,
        GatewayInfo { profile: args.ops.profile.clone(), ..GatewayInfo::new(addr) },
        ServerConfig::default(),
        shutdown,
    ));
    if stopped.abandoned > 0 {
        tracing::warn!("{} connection(s) did not close within the grace period", stopped.abandoned);
    }
    tracing::info!("releasing {}", WsUrl(addr));

    // 5. Release the lock: the last act. Nothing is served or written after this.
    drop(stopped.listener);
    Ok(())
}
