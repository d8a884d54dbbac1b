//! Fuzzes the HTTP request path on the gateway port: `http::parse_head` on arbitrary bytes, then
//! `http::route` and the response builders (SRV-3: bad HTTP gets a status, never a panic; PROTO-15: only a valid key is upgraded).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the crate (`src/fuzz_bridge.rs`, `--cfg fuzzing`), next to the internals they reach.
fuzz_target!(|data: &[u8]| gateway_lock::fuzz_bridge::http_head(data));
