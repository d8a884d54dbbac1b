# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
test: check unit

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests with real processes, sockets and signals.
# (The test-only helper `examples/crash_helper` is built first: tests spawn it as a real process.)
unit:
    cargo build --examples
    cargo test --all-targets
