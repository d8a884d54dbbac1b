//! The plain binaries of `examples/` (`tests/prop_verify.rs` includes this file alone).

use std::path::PathBuf;
use std::process::Command;

/// Path of the plain binary of `examples/NAME.rs`, built on demand (in the profile of this test):
/// `cargo test --all-targets` builds examples only as test harnesses, so the plain binary may be missing.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target profile directory").join("examples").join(name);
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if path.parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with("release")) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    path
}
