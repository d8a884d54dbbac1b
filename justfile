# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
test: check unit loom

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests with real processes, sockets and signals.
unit:
    cargo test --all-targets

# Loom models of the lifecycle core (LIFE-*), exhaustive up to LOOM_MAX_PREEMPTIONS (default 3).
# `--cfg gateway_loom` (not `--cfg loom`, which would switch tokio into loom mode) in its own
# target dir so the normal build is not invalidated; release without LTO builds and runs fastest.
loom:
    RUSTFLAGS="--cfg gateway_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo test --test loom_lifecycle --release
