//! Fuzz target (issue 6): protocol frame parsing and the handshake state machine never panic.
//! `parse_frame` must accept only well-formed requests; a session fed arbitrary frames, before
//! and after authentication, only ever emits JSON frames and known close codes.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the crate (`src/fuzz_bridge.rs`, `--cfg fuzzing`), next to the internals they reach.
fuzz_target!(|data: &[u8]| gateway_lock::fuzz_bridge::protocol_frame(data));
