# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
test: check unit verify-smoke

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests with real processes, sockets and signals.
unit:
    cargo test --all-targets

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
