//! Synchronisation primitives: `std`'s, or `loom`'s when built with `--cfg gateway_loom`.
//! (A project-specific cfg: `--cfg loom` would also switch tokio into loom mode and break it.)

#[cfg(gateway_loom)]
pub(crate) use loom::sync::{Arc, Mutex};
#[cfg(not(gateway_loom))]
pub(crate) use std::sync::{Arc, Mutex};
