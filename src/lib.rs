//! `gateway-lock`: the reference implementation of a gateway's single-instance lock, and the
//! small WebSocket gateway that holds it.
//!
//! The lock *is* the bound listening port: no lock file, no PID file, nothing to clean up.
//! `spec/` states the contract. This crate is the core a program embeds and a port mirrors;
//! the `gateway` binary (`src/bin/gateway/`) is a thin command line over it.
//!
//! # The API
//!
//! - **Taking the lock**: [`bind`] (the exclusive bind; its errors are [`GatewayLockError`], whose
//!   messages are `spec/errors.md`'s), [`acquire`] with a [`Takeover`] (`--wait`, `--replace`).
//! - **Serving on the held listener**: [`serve`] until a shutdown future completes, then a
//!   broadcast-and-drain shutdown; it hands the listener back ([`Stopped`]) so that the caller
//!   releases the port last. [`run`] is the whole `gateway run` sequence from typed
//!   [`RunSettings`]: bind, announce ([`RunEvent`]), serve until a signal, release last; a refusal
//!   is [`RunError::Refused`], carrying who holds the port.
//! - **Who holds a port**: [`lookup`] / [`status`] give a [`Holder`] (its process, its answer to
//!   `GET /healthz`, its [`HolderKind`]); [`stop`] asks a gateway of this user to shut down.
//!
//! The library prints nothing and decides no exit code: it returns typed outcomes and logs
//! diagnostics through `tracing`.
//!
//! # Example
//!
//! Take the lock on a port the system chooses, serve, and shut down (here: as soon as serving
//! has begun); the port is released when the returned listener is dropped.
//!
//! ```
//! use gateway_lock::{bind, serve, GatewayInfo, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = bind("127.0.0.1:0".parse()?)?;
//! let addr = listener.local_addr()?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let stopped = runtime.block_on(async {
//!     let listener = tokio::net::TcpListener::from_std(listener)?;
//!     // While it serves, the port is locked: a second bind is refused.
//!     let shutdown = async move { assert!(bind(addr).is_err()) };
//!     Ok::<_, std::io::Error>(serve(listener, GatewayInfo::new(addr), ServerConfig::default(), shutdown).await)
//! })?;
//! assert_eq!(stopped.abandoned, 0);
//! drop(stopped.listener); // the lock is released last
//! bind(addr)?;
//! # Ok(())
//! # }
//! ```
//!
//! # The modules (private; the files a port mirrors)
//!
//! - `lock`: the exclusive bind and its errors; `takeover`: `--wait` and `--replace`.
//! - `lifecycle`: serving → draining → released, free of I/O (checked by loom and proptest).
//! - `server`: HTTP and WebSocket on the held listener; `http`, `protocol`, `front_door`,
//!   `frame_gate`: the request heads, the gateway protocol, the token/Origin/limits, the frame
//!   gate, all free of I/O; `host_check` (the `Host` check, DOOR-7), `throttle` (failed
//!   authentication, DOOR-8), `token_store` (one generated token per profile, DOOR-6), also free
//!   of I/O but for the token file itself.
//! - `gateway`: the `run` sequence; `profile`: profiles and their state directories; `notify`:
//!   service-manager readiness.
//! - `holder`: who holds a port (kernel socket table and `/proc` on Linux, the health client,
//!   the port watch); `stop` sits on top of it, `takeover` on top of both; `safe_text`: text
//!   another process chose (its command line, the names it reports), escaped and cut (OPS-9).

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod frame_gate;
mod front_door;
mod gateway;
mod holder;
mod host_check;
mod http;
mod lifecycle;
mod lock;
mod notify;
mod profile;
mod protocol;
mod safe_text;
mod server;
mod stop;
mod sync;
mod takeover;
mod throttle;
mod token_store;

#[cfg(fuzzing)]
pub mod fuzz_bridge;

pub use front_door::{Limits, Token, TokenConfig, TokenError, TokenSource, UnauthenticatedBind};
pub use gateway::{ready_line, run, RunError, RunEvent, RunSettings};
pub use holder::{
    check_ephemeral_range as ephemeral_port_warning, find_owner, lookup, status, Answer, HealthInfo, Holder, HolderKind, Owner, Process,
};
pub use host_check::{parse_allowed as parse_allowed_host, AllowedHostError};
pub use lock::{bind, parse_host, GatewayLockError, HostError, WsUrl, DEFAULT_HOST, DEFAULT_PORT};
pub use profile::{
    default_port as profile_port, lock_dir as lock_state_dir, parse_profile_name, ProfileNameError, StateDir, StateDirError,
};
pub use server::{run as serve, GatewayInfo, ServerConfig, Stopped, SHUTDOWN_CLOSE_CODE, SHUTDOWN_CLOSE_REASON};
pub use stop::{stop, StopDone, StopError, StopFailed};
pub use takeover::{acquire, Takeover};
