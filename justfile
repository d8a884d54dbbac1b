# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
test: check unit protocol-python model verify-smoke

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests with real processes, sockets and signals.
# (The test-only helper `examples/crash_helper` is built first: tests spawn it as a real process.)
unit:
    cargo build --examples
    cargo test --all-targets

# OpenClaw's own CLI against our gateway (opt-in, NOT part of `test`): installs Node 24 and
# openclaw from npm into target/interop (about 650 MB), see docs/README-protocol.md.
interop:
    scripts/interop.sh

# An independent client (Python `websockets`, installed into target/pyclient) against real
# gateways: handshake, every close code, methods, shutdown event, Origin 403 (spec/protocol.md).
protocol-python:
    cargo build --quiet --bin gateway
    test -x target/pyclient/bin/python || python3 -m venv target/pyclient
    target/pyclient/bin/python -m pip install --quiet --disable-pip-version-check 'websockets>=14,<18'
    target/pyclient/bin/python tests/python/protocol_client.py target/debug/gateway
# The model of the operations protocol (spec/model/gateway_ops.pml: holders, waiters, replacers,
# stop, kills and SIGSTOP), checked exhaustively by spin; installs Debian's `spin` if missing.
model:
    command -v spin >/dev/null || { s=$(command -v sudo || true); $s apt-get update -qq && $s apt-get install -y -qq spin >/dev/null; }
    spec/model/check.sh

# A short crash-recovery verification run (part of `just test`): 20 cycles against the debug build.
verify-smoke:
    cargo run --quiet --bin gateway -- verify --cycles 20

# A long crash-recovery verification run in release (spec/cli.md, `gateway verify`); extra flags go to it.
verify *ARGS:
    cargo run --release --quiet --bin gateway -- verify --cycles 1000 {{ARGS}}

# Time to lock / fail / take over, graceful shutdown, footprint of the release build beside a minimal
# binder (docs/README-bench.md). Table on stdout, JSON in target/bench/lock.json. BENCH_RUNS=N sets runs.
bench:
    cargo build --release --quiet --example min_binder
    cargo bench --quiet --bench lock
