# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
test: check unit model

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests with real processes, sockets and signals.
unit:
    cargo test --all-targets

# The model of the operations protocol (spec/model/gateway_ops.pml: holders, waiters, replacers,
# stop, kills and SIGSTOP), checked exhaustively by spin; installs Debian's `spin` if missing.
model:
    command -v spin >/dev/null || { s=$(command -v sudo || true); $s apt-get update -qq && $s apt-get install -y -qq spin >/dev/null; }
    spec/model/check.sh
