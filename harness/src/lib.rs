//! The one black-box harness of gateway-lock: it starts an implementation (any language) from a
//! command, watches it only from outside (its output, exit status, the kernel's socket and process
//! tables, HTTP and WebSocket clients) and holds the spec's expectations once ([`spec`]). It never
//! depends on the `gateway-lock` crate. Used by the integration tests and the conformance runner.
//! Linux only: it reads `/proc` and the kernel's socket diagnostics.

pub mod net;
pub mod proc;
pub mod reaper;
pub mod scratch;
pub mod sockets;
pub mod spec;
pub mod ws;

use std::time::Duration;

/// A duration for people: `850 ms`, `1.25 s`.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
