#!/usr/bin/env bash
# DOOR-6, nothing left behind: runs a command (default `just unit`) with HOME and TMPDIR pointing at
# a fresh scratch area (and XDG_STATE_HOME unset, so a gateway that is not given one falls back to
# that HOME), then fails if anything was left in it: no token file, no state directory, no
# temporary file of any test or of any process a test started.
# Tool caches stay where they are (CARGO_HOME, RUSTUP_HOME, XDG_CACHE_HOME): they are not ours.
set -euo pipefail
real_home=${HOME:?HOME must be set}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gateway-leave-nothing.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/home" "$scratch/tmp"
export CARGO_HOME=${CARGO_HOME:-$real_home/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$real_home/.rustup}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$real_home/.cache}
if [ $# -eq 0 ]; then set -- just unit; fi
status=0
HOME="$scratch/home" TMPDIR="$scratch/tmp" env -u XDG_STATE_HOME "$@" || status=$?
left=$(cd "$scratch" && find home tmp -mindepth 1 | sort)
if [ -n "$left" ]; then
    echo "leave-nothing: \`$*\` left these behind in its HOME (home/) or TMPDIR (tmp/):" >&2
    printf '  %s\n' $left | head -50 >&2
    exit 1
fi
echo "leave-nothing: \`$*\` left nothing in HOME or TMPDIR"
exit $status
