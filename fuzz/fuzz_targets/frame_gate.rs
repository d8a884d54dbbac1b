//! Fuzz target (PROTO-7): the frame gate in front of an unauthenticated client's WebSocket stream.
//! Any bytes, cut into any reads of at most `readable()` bytes: no panic; once refused the gate
//! stays refused; a read that `readable()` allowed never spans past a frame header it then refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the crate (`src/fuzz_bridge.rs`, `--cfg fuzzing`), next to the internals they reach.
fuzz_target!(|data: &[u8]| gateway_lock::fuzz_bridge::frame_gate(data));
