//! `gateway-lock`: the reference implementation of a gateway's single-instance lock, and the
//! small WebSocket gateway that holds it.
//!
//! The lock *is* the bound listening port: no lock file, no PID file, nothing to clean up.
//! `spec/` states the contract; this crate is laid out one module per concern:
//!
//! - [`lock`]: taking the lock (the exclusive bind) and its errors, [`lock::GatewayLockError`].
//! - [`lifecycle`]: serving → draining → released, free of I/O (checked by loom and proptest).
//! - [`http`]: parsing and routing a request head on the gateway port, free of I/O.
//! - [`server`]: serving HTTP and WebSocket on an already-bound listener; broadcast-and-drain shutdown.
//! - [`gateway`]: the `gateway run` sequence: bind, announce, serve, release last.
//! - [`cli`]: flags, environment variables and exit codes.
//! - [`logging`]: diagnostics on stderr.
//! - [`front_door`]: the gateway token, non-loopback refusal, Origin allow-list, connection limits.
//! - [`protocol`]: the gateway protocol, free of I/O: frames, handshake state machine, methods.
//! - [`frame_gate`]: refusing an unauthenticated client's oversize frame from its header (PROTO-7).
//! - Issue 12 (private): `host_check` (the `Host` check, DOOR-7), `throttle` (failed authentication,
//!   DOOR-8), `token_store` (one generated token per profile, DOOR-6), `safe_text` (another process's
//!   text escaped and cut, OPS-9).
//! - Operations (issue 4): [`probe`] (who holds a port), [`status`], [`stop`], [`takeover`]
//!   (`--wait`, `--replace`), [`profile`] (profiles and their state directories), [`notify`]
//!   (service-manager readiness).
//! - [`verify`]: `gateway verify`, crash-recovery verification runs against real gateway processes.

pub mod cli;
pub mod frame_gate;
pub mod front_door;
pub mod gateway;
mod host_check;
pub mod http;
pub mod lifecycle;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod probe;
pub mod profile;
pub mod protocol;
mod safe_text;
pub mod server;
pub mod status;
pub mod stop;
mod sync;
pub mod takeover;
mod throttle;
mod token_store;
pub mod verify;
