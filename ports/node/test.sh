#!/bin/sh
# Checks the Node.js port: its own tests (node:test), then the conformance runner against it with every
# claim the port makes (the lock rows, the protocol with --token, naming the holder, short timers).
# Exits non-zero if any test or any conformance row fails.
#   ports/node/test.sh                      # from anywhere in the checkout
#   CONFORMANCE=path/to/runner ports/node/test.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
node -e 'if (Number(process.versions.node.split(".")[0]) < 20) { console.error("ports/node needs Node.js 20 or later"); process.exit(1) }'
node --test ports/node/test/*.test.js
if [ -z "${CONFORMANCE:-}" ]; then  # the runner, a crate of this workspace (conformance/)
    cargo build --quiet -p gateway-conformance
    CONFORMANCE=target/debug/gateway-conformance
fi
"$CONFORMANCE" "node $root/ports/node/gateway.js run --port {port} --host {host} --token {token}" \
    --token s3cret --names-holder --timer-args '--handshake-timeout-ms 500 --tick-interval-ms 50'
