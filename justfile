# gateway-lock tasks. `just test` is what CI runs (README.md).
set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway on its defaults (ws://127.0.0.1:18789); extra flags go to `gateway run`.
run *ARGS:
    cargo run --release --quiet --bin gateway -- run {{ARGS}}

# Everything CI checks: build, lints, formatting, every test suite.
# The suites that start processes (unit, with the conformance mutants; protocol-python; verify-smoke;
# verify-node; port-node; conformance) run inside `leave-nothing` (DOOR-6).
test: check leave-nothing loom model fuzz-smoke

# Formatting and lints (warnings are errors).
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
    # The core alone, as an embedder gets it (`default-features = false`): no CLI-only crate.
    cargo build --quiet --lib --no-default-features

# DOOR-6, nothing left behind: runs RECIPES with HOME and TMPDIR pointing at a fresh scratch area
# (XDG_STATE_HOME unset) and fails if anything is left there (scripts/leave-nothing.sh).
# `conformance` comes last: it takes arguments, and would read a recipe name after it as its template.
leave-nothing RECIPES="unit protocol-python verify-smoke verify-node port-node conformance":
    scripts/leave-nothing.sh just {{RECIPES}}

# Unit and integration tests with real processes, sockets and signals (the conformance runner's
# mutants too); the library's doctests (`--all-targets` leaves them out).
# (The test-only helper `examples/crash_helper` is built first: tests spawn it as a real process.)
unit:
    cargo build --examples
    cargo test --workspace --all-targets
    cargo test --doc

# OpenClaw's own CLI against our gateway (opt-in, NOT part of `test`): installs Node 24 and
# openclaw from npm into target/interop (about 650 MB), see docs/README-protocol.md.
interop:
    scripts/interop.sh

# OpenClaw's own gateway through the conformance runner (opt-in, NOT part of `test`): installs
# Node 24 and openclaw from npm into target/peer (PEER_DIR), runs `openclaw gateway run` against
# spec/ with its expectations file (conformance/expectations/); see docs/README-peer.md.
# Extra flags go to the runner, e.g. `just peer-conformance --only LOCK-1,LOCK-4`.
[positional-arguments]
peer-conformance *ARGS:
    scripts/peer-conformance.sh "$@"

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
# Loom models of the lifecycle core (LIFE-*), exhaustive up to LOOM_MAX_PREEMPTIONS (default 5).
# `--cfg gateway_loom` (not `--cfg loom`, which would switch tokio into loom mode) in its own
# target dir so the normal build is not invalidated; release without LTO builds and runs fastest.
loom:
    RUSTFLAGS="--cfg gateway_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-5}" \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo test --lib --release lifecycle::loom_tests

# The fuzz targets (fuzz/fuzz_targets/*.rs); `fuzz-smoke` runs each of them.
fuzz_targets := "http_head cli_args host_port protocol_frame frame_gate"

# Installs cargo-fuzz if missing (a fresh machine or CI has none).
fuzz-tool:
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Fuzzes one target for SECONDS (default 60). Stable Rust via RUSTC_BOOTSTRAP=1; no sanitizer by
# default (the crate is safe Rust; FUZZ_SANITIZER=address for ASan). New inputs go to
# fuzz/target/corpus/<target> (not committed); the seeds in fuzz/corpus/<target> are read only.
# A crash is saved in fuzz/artifacts/<target>/: turn it into a unit test.
fuzz target seconds="60": fuzz-tool
    mkdir -p fuzz/target/corpus/{{target}}
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" {{target}} \
        target/corpus/{{target}} corpus/{{target}} -- -max_total_time={{seconds}} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

# FUZZ-2: every fuzz target for SECONDS each (default 600) with a kept corpus (FUZZ_CORPUS, default
# fuzz/kept-corpus), then a table of executions and coverage (scripts/fuzz-long.sh; docs/README-testing.md).
# Extra arguments name targets, e.g. `just fuzz-long 120 http_head`.
fuzz-long seconds="600" *TARGETS: fuzz-tool
    scripts/fuzz-long.sh {{seconds}} {{TARGETS}}

# A short run of every fuzz target (part of `just test`).
fuzz-smoke seconds="15": fuzz-tool
    cd fuzz && cargo fmt --check
    for t in {{fuzz_targets}}; do just fuzz "$t" {{seconds}}; done

# Black-box conformance of an implementation against spec/ (one row per invariant ID), by the
# runner `gateway-conformance` (conformance/; installable with `cargo install --path conformance`).
# TEMPLATE is a shell command with {port} (and optionally {host}, {token}); default: our own binary
# with every claim. Claims and options (`--help`, spec/README.md "Checking a port"): --token TOKEN,
# --names-holder, --timer-args 'ARGS', --ready port, --deadline, --only, --repeat, --seed, --burst,
# --expect FILE, --json, --junit FILE, --verbose.
# Example: just conformance 'node port.js --port {port}'
#          just conformance 'node port.js --port {port} --token {token}' --token s3cret --names-holder
[positional-arguments]
conformance template="" *CLAIMS:
    cargo build --quiet --workspace --bins
    target/debug/gateway-conformance "$@"

# The Node.js port (ports/node/, issue 13): its own tests, then the conformance runner with every claim
# it makes; fails on any row that regresses (part of `just test`).
port-node:
    sh ports/node/test.sh

# The runner proven by mutants, each with exactly one defect, that it must FAIL naming their rows:
# conformance/mutants/mini_port.py --defect NAME (the lock rows) and conformance/mutants/node_defects.json,
# one-edit copies of ports/node/ (the protocol and front-door rows, OPS-1, CLI-2; needs Node.js 20).
# Part of `unit` (cargo test --workspace).
conformance-mutants:
    cargo test --quiet -p gateway-conformance --test mutants --test node_mutants

# A short crash-recovery verification run (part of `just test`): 20 cycles against the debug build.
verify-smoke:
    cargo run --quiet --bin gateway -- verify --cycles 20

# A short crash-recovery verification run against the Node.js port (ports/node, part of `just test`):
# `gateway verify --template`, each instance in fresh directories (docs/README-verify.md); VERIFY_NODE_CYCLES sets the cycles.
verify-node:
    cargo build --quiet --bin gateway
    target/debug/gateway verify --cycles "${VERIFY_NODE_CYCLES:-20}" --template "node $PWD/ports/node/gateway.js run --port {port} --token {token}"

# A long crash-recovery verification run in release (spec/cli.md, `gateway verify`); extra flags go to it.
verify *ARGS:
    cargo run --release --quiet --bin gateway -- verify --cycles 1000 {{ARGS}}

# Time to lock / fail / take over, graceful shutdown, footprint of the release build beside a minimal
# binder (bench/: the gateway-bench crate with min_binder; docs/README-bench.md). Table on stdout,
# JSON in target/bench/lock.json. BENCH_RUNS=N sets runs.
bench:
    cargo build --release --quiet --bin gateway
    cargo bench --quiet -p gateway-bench --bench lock
