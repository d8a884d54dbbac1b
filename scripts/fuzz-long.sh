#!/usr/bin/env bash
# FUZZ-2: fuzzes every target for SECONDS each (default 600) with a kept corpus, and reports executions
# and coverage. Usage: scripts/fuzz-long.sh [SECONDS] [TARGET...] (default: every target in fuzz/fuzz_targets).
#
# - The corpus grows in $FUZZ_CORPUS/<target> (default fuzz/kept-corpus, git-ignored), kept from run to run;
#   the committed seeds in fuzz/corpus/<target> are read only.
# - A crash is saved by libFuzzer in fuzz/artifacts/<target>/ and the run goes on with the next target; the
#   script then exits 1. Turn every crash into a unit test (docs/README-testing.md, "Fuzzing").
# - The table (markdown) goes to stdout and to fuzz/target/fuzz-long.md; each target's log to
#   fuzz/target/fuzz-long/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
corpus=${FUZZ_CORPUS:-kept-corpus}
mkdir -p target/fuzz-long
table=target/fuzz-long.md
{
    echo "| target | seconds | executions | exec/s | coverage (cov) | features (ft) | corpus (files) | crashes |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$table"
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$corpus/$t"
    log=target/fuzz-long/$t.log
    status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" "$t" "$corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    files=$(find "$corpus/$t" -type f | wc -l)
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "fuzz-long: $t failed (exit $status); see fuzz/$log and fuzz/artifacts/$t/" >&2
    fi
    echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $files | $crashes |" >>"$table"
done
cat "$table"
exit $failed
