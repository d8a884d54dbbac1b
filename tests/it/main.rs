//! The integration tests of gateway-lock, one test binary with a module per topic (one link step
//! for all of them; `cargo test --test it TOPIC` runs one topic, e.g. `cargo test --test it
//! lock_exclusive`). Real `gateway` processes on ephemeral loopback ports, real signals; readiness
//! by the ready line, deadlines everywhere ([`support`]). Each test names the invariant of `spec/`
//! it enforces, in its name or its doc comment.
//!
//! Not here: `tests/prop_verify.rs`, whose process is a child subreaper that counts every child it
//! does not know as a leftover of `gateway verify` (it needs a process of its own), and
//! `tests/spec_consistency.rs`, which reads `spec/` and the test sources and starts nothing.

mod support;

mod cli_usage;
mod front_door;
mod http_probes;
mod lock_exclusive;
mod lock_release;
mod ops_holder;
mod ops_service;
mod ops_takeover;
mod prop_operations;
mod prop_processes;
mod protocol_handshake;
mod safe_text;
mod serving;
mod shutdown;
mod spec_gaps;
mod throttle;
mod verify;
mod ws_strict;
