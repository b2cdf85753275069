#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time, one after another, and prints per target the
# executions, the seconds, the coverage libFuzzer reports (`cov:` edges, `ft:` features) and any crash.
# Not part of CI's default path: `cargo test` replays the kept corpora instead (tests/fuzz_corpus.rs).
#
#   fuzz/run.sh                          # every target, SECONDS_PER_TARGET each (default 180)
#   SECONDS_PER_TARGET=600 fuzz/run.sh resp_server session_resp
#   MERGE=1 fuzz/run.sh                  # afterwards, add inputs with new coverage to fuzz/corpus/<target>/
#
# Needs `cargo install cargo-fuzz`. The toolchain is stable: no sanitizer needs no nightly flag
# (SANITIZER=address sets RUSTC_BOOTSTRAP=1 for its -Zsanitizer flag; measured about 4.6x fewer exec/s; the code
# under test forbids `unsafe`).
# New inputs go to a scratch corpus (fuzz/target/work/<target>/); crashes to fuzz/artifacts/<target>/. A crash
# input worth keeping goes to fuzz/regressions/<target>/, which the replay runs too. Exit status 1 if any
# target found a crash.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${SECONDS_PER_TARGET:-180}
sanitizer=${SANITIZER:-none}
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
if [ "$sanitizer" != none ]; then export RUSTC_BOOTSTRAP=1; fi

# One core: the machines are shared.
mkdir -p target/work
nice -n 10 cargo fuzz build --sanitizer "$sanitizer" >target/work/build.log 2>&1 ||
    { tail -20 target/work/build.log; exit 1; }

failed=0
printf '%-16s %12s %8s %8s %8s  %s\n' target executions seconds cov ft result
for t in "${targets[@]}"; do
    work=target/work/$t
    log=target/work/$t.log
    mkdir -p "$work" corpus/"$t" regressions/"$t"
    status=ok
    # Without -jobs libFuzzer runs one process, in place (-jobs=1 would fork one and log to a file).
    nice -n 10 cargo fuzz run --sanitizer "$sanitizer" "$t" "$work" corpus/"$t" regressions/"$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 ||
        status=CRASH
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-16s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${took:-?}" "${cov:-?}" "${ft:-?}" "$status"
    if [ "$status" != ok ]; then
        failed=1
        grep -E 'panicked at|^SUMMARY|Test unit written to' "$log" | head -5 | sed 's/^/    /'
    fi
    if [ "${MERGE:-0}" = 1 ]; then
        nice -n 10 cargo fuzz run --sanitizer "$sanitizer" "$t" corpus/"$t" "$work" -- -merge=1 \
            >"$log.merge" 2>&1 || echo "    merge failed: $log.merge"
    fi
done
exit "$failed"
