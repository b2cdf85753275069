#!/usr/bin/env bash
# The cost of splitting a load across agents (issue 17, must-show 5): one sockpool-loadgen process vs the same
# load as 1 agent and as 2 agents (`run --agents N --start-at T --bind 127.0.0.x`, then `merge`), on this machine,
# against one sockpool-server, at the same total connections. Printed side by side: the merged rate and p99.
#
#   bash benches/compare/agents.sh            # full run, about 4-5 minutes after the build
#   QUICK=1 bash benches/compare/agents.sh    # a smoke run of the script itself: tiny loads, meaningless numbers
#
# Two loads, each ROUNDS times per configuration (the configurations take turns within a round):
#   closed: --connections CONNS, closed loop: the rate is what the setup can push; p99 is at that rate.
#   open:   --rate RATE over the same connections: p99 at an equal offered load, corrected for coordinated omission.
# The server has SERVER_WORKERS worker threads; each agent and the single process run --threads 1. On a machine
# with few cores, agents compete with the server and each other for them: that is part of what is measured.
# Every load is bounded by DUR and by `timeout`; the whole script by TOTAL_LIMIT. Every process it starts binds or
# connects on 127.0.0.x only and is stopped on exit (trap).
#
# Knobs (environment): CONNS (default 32), RATE (default 20000), DUR (seconds, default 5), ROUNDS (default 5),
# SERVER_WORKERS (default 1), LEAD (ms between launching agents and their --start-at, default 1500), TOTAL_LIMIT.
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

quick DUR=1 ROUNDS=1 RATE=2000
CONNS=${CONNS:-32}
RATE=${RATE:-20000}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-5}
SERVER_WORKERS=${SERVER_WORKERS:-1}
LEAD=${LEAD:-1500}
TOTAL_LIMIT=${TOTAL_LIMIT:-900}

need jq
limit_total "$TOTAL_LIMIT"
build_release
LG="$BIN/sockpool-loadgen"

start_sockpool agents --listen framed=127.0.0.1:0 --workers "$SERVER_WORKERS"
TARGET="127.0.0.1:$(sp_port framed)"
echo "sockpool-server (--workers $SERVER_WORKERS) on $TARGET" >&2

# measure agents load...: one run of the load (`closed` or `open`) by `agents` processes (0: one plain process,
# no --agents); sets M_RATE (merged replies/s), M_P99 (merged corrected p99, µs), M_ERR, M_BN (any bottleneck).
measure() {
    local agents=$1 load=$2 i at json="$TMP/merged.json"
    local -a common=(--target "$TARGET" --connections "$CONNS" --threads 1 --duration "${DUR}s" --quiet)
    [ "$load" = open ] && common+=(--rate "$RATE")
    rm -f "$TMP"/agent-*.json
    if [ "$agents" = 0 ]; then
        fg_run timeout $((DUR + 30)) "$LG" run "${common[@]}" --json "$json" >/dev/null 2>"$TMP/lg.err" ||
            note "one process ($load) failed: $(tail -c 300 "$TMP/lg.err" | tr '\n' ' ')"
    else
        at=$(($(date +%s%3N) + LEAD))
        local -a pids=()
        for ((i = 0; i < agents; i++)); do
            spawn "agent-$i" timeout $((DUR + 30)) "$LG" run "${common[@]}" --agents "$agents" --agent-index "$i" \
                --start-at "$at" --bind "127.0.0.$((2 + i))" --json "$TMP/agent-$i.json"
            pids+=("$SPAWNED")
        done
        for i in "${!pids[@]}"; do
            wait "${pids[$i]}" || note "agent $i of $agents ($load) failed: $(tail -c 300 "$TMP/agent-$i.err" | tr '\n' ' ')"
        done
        fg_run "$LG" merge "$TMP"/agent-*.json --quiet --json "$json" 2>"$TMP/merge.err" ||
            note "merge of $agents agent(s) ($load): $(tail -c 300 "$TMP/merge.err" | tr '\n' ' ')"
        jq -r '.merge.warnings[]?' "$json" 2>/dev/null | while read -r w; do echo "  merge warns: $w" >&2; done
    fi
    M_RATE=$(jq -r '.summary.rate // 0' "$json" 2>/dev/null || echo 0)
    M_P99=$(jq -r '.latency.corrected.p99 // 0' "$json" 2>/dev/null || echo 0)
    M_ERR=$(jq -r '.summary.errors // "?"' "$json" 2>/dev/null || echo "?")
    M_BN=$(jq -r '.health.bottleneck | tostring' "$json" 2>/dev/null || echo "?")
    [ "$M_ERR" = 0 ] || note "$agents agent(s) ($load): $M_ERR errors"
}

ROWS=()
for load in closed open; do
    declare -A rate=() p99=() bn=() shown_rate=() shown_p99=()
    for ((r = 0; r < ROUNDS; r++)); do
        # Rotate the order each round, so that no configuration always goes first.
        order=(0 1 2)
        order=("${order[@]:$((r % 3))}" "${order[@]:0:$((r % 3))}")
        for a in "${order[@]}"; do
            measure "$a" "$load"
            rate[$a]+="$M_RATE " p99[$a]+="$M_P99 " bn[$a]+="$M_BN "
            shown_rate[$a]+="$(fmt "$M_RATE") " shown_p99[$a]+="$(fmt "$M_P99") "
            echo "  $load round $((r + 1)), $a agent(s): $(fmt "$M_RATE") req/s, p99 $(fmt "$M_P99") µs, bottleneck $M_BN" >&2
        done
    done
    # shellcheck disable=SC2086 # the per-round values are space-separated on purpose
    base_rate=$(median ${rate[0]}) base_p99=$(median ${p99[0]})
    for a in 0 1 2; do
        # shellcheck disable=SC2086
        mr=$(median ${rate[$a]}) mp=$(median ${p99[$a]})
        name=$(case $a in 0) echo "one process" ;; 1) echo "1 agent, merged" ;; *) echo "$a agents, merged" ;; esac)
        ROWS+=("| $load | $name | $(fmt "$mr") | $(ratio "$mr" "$base_rate") | $(fmt "$mp") | $(ratio "$mp" "$base_p99") | ${shown_rate[$a]% } | ${shown_p99[$a]% } | ${bn[$a]% } |")
    done
    unset rate p99 bn shown_rate shown_p99
done
stop_sockpool

echo
run_info
echo "sockpool-server --workers $SERVER_WORKERS; every configuration: --connections $CONNS in total, --threads 1 per process, ${DUR}s measured; open loop --rate $RATE in total; median of $ROUNDS rounds"
echo "rate = merged replies/s over the union of the agents' windows; p99 = merged corrected latency (histograms added); ratios against one process"
echo
echo "| load | configuration | rate req/s | rate vs one process | p99 µs | p99 vs one process | each round's rate | each round's p99 µs | bottleneck flags |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
print_notes "Notes:"
