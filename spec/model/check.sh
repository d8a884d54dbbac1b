#!/usr/bin/env bash
# Checks spec/model/gateway_ops.pml exhaustively with spin (run by `just model`, part of `just test`):
# every property must hold (errors: 0), and every known-bad mutant must be caught (errors > 0),
# so that the model is known to be able to fail.
set -euo pipefail
model="$(cd "$(dirname "$0")" && pwd)/gateway_ops.pml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$model" .

check() { # check <expect: hold|fail> <property> [-DMUTANT]
    local expect=$1 prop=$2; shift 2
    local out
    out=$(spin "$@" -run -DNFAIR=3 -a -f -E -ltl "$prop" gateway_ops.pml 2>&1) || true
    local errors
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
    local states
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' <<<"$out" | tail -1)
    if [[ -z "$errors" ]]; then
        echo "model: spin failed for $prop $*:"; echo "$out"; exit 1
    fi
    if [[ $expect == hold && $errors != 0 ]]; then
        echo "model: property $prop VIOLATED:"; echo "$out"; exit 1
    fi
    if [[ $expect == fail && $errors == 0 ]]; then
        echo "model: mutant $* was NOT caught by $prop"; exit 1
    fi
    echo "model: $prop ${*:-(the protocol)}: $([[ $expect == hold ]] && echo holds || echo mutant caught) (${states} states)"
}

check hold one_holder
check hold no_foreign_signal
check hold taken
check fail one_holder -DBUG_SPLIT_BIND
check fail no_foreign_signal -DBUG_ANY_USER
check fail taken -DBUG_NO_WAKE
