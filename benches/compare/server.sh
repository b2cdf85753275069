#!/usr/bin/env bash
# sockpool-server against redis-server and nginx, in one run on one machine, printing ratios (issue 2, item 7).
#
#   bash benches/compare/server.sh            # full run, about 6 minutes after the build
#   QUICK=1 bash benches/compare/server.sh    # a smoke run of the script itself: tiny loads, meaningless numbers
#
# What it measures, each at equal worker counts (1 and 2):
#   1. redis-benchmark -t ping -c 50 at -P 1 and -P 16: redis-server (--io-threads N) vs sockpool-server resp
#      (--workers N). Reports PING_MBULK (the RESP array form) and PING_INLINE.
#   2. wrk -c 50: nginx (worker_processes N, `return 200` with a body as long as sockpool's) vs sockpool-server
#      http (--workers N).
#   3. Memory: sockpool-server's VmRSS before and while holding IDLE_CONNS idle connections (10,000), in KiB per
#      connection; redis-server's too, for scale.
#   4. The six concurrency models of sockpool-server (--workers 2) under the same loads as 1 and 2.
#   5. Fairness at scale (issue 14): `wrk -t1 -c FAIR_CONNS --latency` (8,000) against one worker of each model and
#      one nginx worker, ROUNDS rounds, alternating which goes first: p99 and rate against nginx's in the same round.
#   6. redis-benchmark's whole default suite (no -t: strings, lists, sets, hashes, sorted sets, LRANGE_100…600,
#      MSET), -c 50 -n SUITE_REQS, redis-server vs sockpool-server resp, one worker/thread each, ROUNDS rounds
#      (FLUSHALL before each): every test's rate and ratio.
# Every peer and server binds 127.0.0.1 on a free port. Every load is bounded by a request count or a duration
# and by `timeout`; the whole script by TOTAL_LIMIT. Every process it starts is stopped on exit (trap).
#
# Knobs (environment): REQS (requests per -P 1 run), REQS_P16, WRK_DUR (seconds), ROUNDS (rounds per peer
# comparison, default 3: the table shows medians and every round's ratio), IDLE_CONNS, MODEL (the sockpool model
# used against the peers; default async), SERVER_FLAGS (more sockpool-server flags against the peers, e.g.
# SERVER_FLAGS="--busy-poll 50us"), TOTAL_LIMIT (seconds), ONLY (sections: peers,idle,models,fair,suite; default
# all), FAIR_CONNS, FAIR_DUR (seconds), FAIR_MODELS (the models of the fairness round; default all six),
# SUITE_REQS (requests per test of the suite).
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

quick REQS=20000 REQS_P16=100000 WRK_DUR=1 IDLE_CONNS=1000 ROUNDS=1 FAIR_CONNS=200 FAIR_DUR=1 SUITE_REQS=2000
REQS=${REQS:-100000}
REQS_P16=${REQS_P16:-2000000}
WRK_DUR=${WRK_DUR:-5}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
MODEL=${MODEL:-async}
SERVER_FLAGS=${SERVER_FLAGS:-} # more sockpool-server flags against the peers, e.g. "--busy-poll 50us"
TOTAL_LIMIT=${TOTAL_LIMIT:-1200}
ONLY=${ONLY:-peers,idle,models,fair,suite} # which sections to run
SUITE_REQS=${SUITE_REQS:-50000}
FAIR_CONNS=${FAIR_CONNS:-8000}
FAIR_DUR=${FAIR_DUR:-10}
FAIR_MODELS=${FAIR_MODELS:-async per-core threads event-loop processes uring}
CLIENTS=50

need redis-server redis-benchmark redis-cli nginx wrk
limit_total "$TOTAL_LIMIT"

# Enough descriptors for IDLE_CONNS and FAIR_CONNS on both ends (the clients and the servers are our children).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "ulimit -n is $(ulimit -n), below IDLE_CONNS+1000; lowering IDLE_CONNS" >&2
    IDLE_CONNS=$(($(ulimit -n) - 1000))
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((FAIR_CONNS + 1000)) ]; then
    echo "ulimit -n is $(ulimit -n), below FAIR_CONNS+1000; lowering FAIR_CONNS" >&2
    FAIR_CONNS=$(($(ulimit -n) - 1000))
fi

# ---------------------------------------------------------------------------------------------------- helpers

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# sockpool-server against the peers: model workers [more flags]; sets SP_PID, SP_RESP and SP_HTTP (ports).
start_server() {
    local model=$1 workers=$2
    shift 2
    start_sockpool "$model-$workers" --model "$model" --workers "$workers" --max-connections 20000 \
        --http-body-size "$HTTP_BODY" --listen resp=127.0.0.1:0 --listen http=127.0.0.1:0 "$@"
    SP_RESP=$(sp_port resp)
    SP_HTTP=$(sp_port http)
}

# One round of a load, its rates appended to named arrays: rb_into mb_array in_array rb-args...,
# wrk_into array wrk_rps-args...
rb_into() {
    local -n mb_=$1 in_=$2
    shift 2
    rb "$@"
    mb_+=("$RB_MB") in_+=("$RB_IN")
}
wrk_into() {
    local -n rps_=$1
    shift
    wrk_rps "$@"
    rps_+=("$WRK_RPS")
}

# One table row from two arrays of per-round rates (named): the medians, their ratio, and every round's ratio.
row() { # "load | workers | peer" peer_array sockpool_array
    local -n peer_r=$2 sp_r=$3
    local pm sm i each=""
    pm=$(median "${peer_r[@]}") sm=$(median "${sp_r[@]}")
    for i in "${!peer_r[@]}"; do each+="${each:+, }$(ratio "${sp_r[$i]}" "${peer_r[$i]}")"; done
    ROWS+=("| $1 | $(fmt "$pm") | $(fmt "$sm") | **$(ratio "$sm" "$pm")** | $each |")
}

build_release
IDLE="$BIN/idle_conns"

ROWS=()

# ------------------------------------------------------------------------------ 1 + 2: against redis and nginx

for w in 1 2; do
    [[ ,$ONLY, == *,peers,* ]] || break
    echo "workers=$w: redis-server --io-threads $w, nginx worker_processes $w, sockpool-server --model $MODEL --workers $w $SERVER_FLAGS" >&2
    # shellcheck disable=SC2086 # flags are words
    start_server "$MODEL" "$w" $SERVER_FLAGS
    # With 2 workers, redis-server is measured with --io-threads 2 (equal threads) and, for scale, with its
    # default --io-threads 1: its I/O threads busy-wait, which on a small or shared machine can make 2 slower.
    io_list=$w
    [ "$w" = 2 ] && io_list="2 1"
    for io in $io_list; do
        start_redis "$io"
        for p in 1 16; do
            n=$REQS
            [ "$p" = 16 ] && n=$REQS_P16
            # shellcheck disable=SC2034 # filled by rb_into, read by row
            r_mb=() r_in=() s_mb=() s_in=()
            for ((r = 0; r < ROUNDS; r++)); do
                in_turn "$r" rb_into r_mb r_in "$REDIS_PORT" "$p" "$n" "$CLIENTS" "redis-server --io-threads $io" \
                    -- rb_into s_mb s_in "$SP_RESP" "$p" "$n" "$CLIENTS" sockpool-server
            done
            row "redis-benchmark -t ping (PING_MBULK) -c $CLIENTS -P $p -n $n | $w | redis-server --io-threads $io" r_mb s_mb
            row "redis-benchmark -t ping (PING_INLINE) -c $CLIENTS -P $p -n $n | $w | redis-server --io-threads $io" r_in s_in
        done
        stop "$REDIS_PID"
    done
    start_nginx "$w"
    # shellcheck disable=SC2034 # filled by wrk_into, read by row
    n_rps=() s_rps=()
    for ((r = 0; r < ROUNDS; r++)); do
        in_turn "$r" wrk_into n_rps "$NGINX_PORT" 2 "$WRK_DUR" "$CLIENTS" nginx \
            -- wrk_into s_rps "$SP_HTTP" 2 "$WRK_DUR" "$CLIENTS" sockpool-server
    done
    row "wrk -t 2 -c $CLIENTS -d ${WRK_DUR}s | $w | nginx worker_processes $w" n_rps s_rps
    stop "$NGINX_PID"
    stop_sockpool
done

# --------------------------------------------------------------------------------------- 3: idle connections

idle_rss() { # pid port label; sets IDLE_BEFORE and IDLE_AFTER (KiB)
    local i log="idle-$3"
    sleep 0.5
    IDLE_BEFORE=$(rss_kib "$1")
    spawn "$log" "$IDLE" "127.0.0.1:$2" "$IDLE_CONNS" 120
    local helper=$SPAWNED
    for ((i = 0; i < 1200; i++)); do
        grep -q '^held ' "$TMP/$log.out" 2>/dev/null && break
        kill -0 "$helper" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q '^held ' "$TMP/$log.out"; then
        note "idle_conns against $3 did not hold $IDLE_CONNS connections: $(head -c 300 "$TMP/$log.err")"
    fi
    sleep 1 # let the server finish accepting and registering every connection
    IDLE_AFTER=$(rss_kib "$1")
    stop "$helper"
}

sp_before="" sp_after="" r_before="" r_after=""
if [[ ,$ONLY, == *,idle,* ]]; then
    echo "idle connections: $IDLE_CONNS" >&2
    # shellcheck disable=SC2086 # flags are words
    start_server "$MODEL" 2 $SERVER_FLAGS
    idle_rss "$SP_PID" "$SP_RESP" sockpool
    sp_before=$IDLE_BEFORE sp_after=$IDLE_AFTER
    stop_sockpool
    start_redis 1
    idle_rss "$REDIS_PID" "$REDIS_PORT" redis
    r_before=$IDLE_BEFORE r_after=$IDLE_AFTER
    stop "$REDIS_PID"
fi
per_conn() { awk -v a="$1" -v b="$2" -v n="$IDLE_CONNS" 'BEGIN { printf "%.2f", (b - a) / n }'; }

# ------------------------------------------------------------------------------------------- 4: the models

MODEL_ROWS=()
base_p1="" base_p16="" base_wrk=""
for m in async "async --busy-poll 50us" per-core threads event-loop processes uring; do
    [[ ,$ONLY, == *,models,* ]] || break
    echo "model $m --workers 2" >&2
    read -r model flags <<<"$m" # "async --busy-poll 50us" is a model and its flags
    # shellcheck disable=SC2086 # flags are words
    start_server "$model" 2 $flags
    rb "$SP_RESP" 1 "$REQS" "$CLIENTS" "sockpool-server --model $m"
    m_p1=$RB_MB
    rb "$SP_RESP" 16 "$REQS_P16" "$CLIENTS" "sockpool-server --model $m"
    m_p16=$RB_MB
    wrk_rps "$SP_HTTP" 2 "$WRK_DUR" "$CLIENTS" "sockpool-server --model $m"
    m_wrk=$WRK_RPS
    stop_sockpool
    if [ -z "$base_p1" ]; then base_p1=$m_p1 base_p16=$m_p16 base_wrk=$m_wrk; fi
    MODEL_ROWS+=("| $m | $(fmt "$m_p1") ($(ratio "$m_p1" "$base_p1")) | $(fmt "$m_p16") ($(ratio "$m_p16" "$base_p16")) | $(fmt "$m_wrk") ($(ratio "$m_wrk" "$base_wrk")) |")
done

# -------------------------------------------------------------------------------------- 5: fairness at scale

# wrk_fair port label: wrk -t1 -c FAIR_CONNS --latency for FAIR_DUR s; sets FAIR_RPS and FAIR_P99 (ms; 0 when not
# measured).
wrk_fair() {
    local out="$TMP/wrk-fair.out"
    FAIR_RPS=0 FAIR_P99=0
    if ! fg_run timeout $((FAIR_DUR + 60)) wrk -t 1 -c "$FAIR_CONNS" -d "${FAIR_DUR}s" --latency \
        "http://127.0.0.1:$1/" >"$out" 2>&1; then
        note "wrk -c $FAIR_CONNS against $2 failed or timed out: $(tail -c 300 "$out" | tr '\n' ' ')"
    fi
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        note "wrk -c $FAIR_CONNS against $2: $(grep -hE 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')"
    fi
    FAIR_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    # wrk prints the 99th percentile as e.g. `99%  152.31ms` (us, ms or s).
    FAIR_P99=$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v); exit }' "$out")
    : "${FAIR_RPS:=0}" "${FAIR_P99:=0}"
}

FAIR_ROWS=()
if [[ ,$ONLY, == *,fair,* ]]; then
    for m in $FAIR_MODELS; do
        echo "fairness: $m --workers 1 vs nginx worker_processes 1, wrk -t1 -c $FAIR_CONNS" >&2
        start_server "$m" 1
        start_nginx 1
        # shellcheck disable=SC2034 # filled per round
        n_p99=() s_p99=() n_r=() s_r=() each=""
        for ((r = 0; r < ROUNDS; r++)); do
            fair_nginx() { wrk_fair "$NGINX_PORT" nginx; n_p99+=("$FAIR_P99") n_r+=("$FAIR_RPS"); }
            fair_sp() { wrk_fair "$SP_HTTP" "sockpool-server --model $m"; s_p99+=("$FAIR_P99") s_r+=("$FAIR_RPS"); }
            in_turn "$r" fair_nginx -- fair_sp
            each+="$(ratio "${s_p99[r]}" "${n_p99[r]}")× p99 at $(ratio "${s_r[r]}" "${n_r[r]}")× rate; "
        done
        stop "$NGINX_PID"
        stop_sockpool
        FAIR_ROWS+=("| $m | $(fmt "$(median "${n_r[@]}")") | $(median "${n_p99[@]}") | $(fmt "$(median "${s_r[@]}")") | $(median "${s_p99[@]}") | ${each% } |")
    done
fi

# ---------------------------------------------------------------------------- 6: redis-benchmark's default suite

# suite_into assoc port label: runs the whole default suite once (after FLUSHALL) and appends each test's rate to
# assoc[test] (space-separated, one per round); SUITE_TESTS keeps the tests in the order they ran.
SUITE_TESTS=()
suite_into() {
    local -n acc_=$1
    local csv="$TMP/suite.csv" err="$TMP/suite.err" name rps
    redis-cli -h 127.0.0.1 -p "$2" FLUSHALL >/dev/null
    if ! fg_run timeout 600 redis-benchmark -h 127.0.0.1 -p "$2" -c "$CLIENTS" -n "$SUITE_REQS" --csv \
        >"$csv" 2>"$err"; then
        note "redis-benchmark's suite against $3 failed or timed out: $(tr '\r\n' '  ' <"$err" | tail -c 300)"
    fi
    if grep -qi error "$err" "$csv"; then
        note "redis-benchmark's suite against $3 reported errors: $(grep -hi error "$err" "$csv" | head -3 | tr '\r\n' '  ')"
    fi
    while IFS=$'\t' read -r name rps; do
        [[ " ${SUITE_TESTS[*]} " == *" $name "* ]] || SUITE_TESTS+=("$name")
        acc_[$name]+="${acc_[$name]:+ }$rps"
    done < <(awk -F'"' 'NR > 1 { gsub(/ /, "_", $2); print $2 "\t" $4 }' "$csv")
}

SUITE_ROWS=()
if [[ ,$ONLY, == *,suite,* ]]; then
    echo "redis-benchmark's default suite: redis-server vs sockpool-server --model $MODEL --workers 1" >&2
    # shellcheck disable=SC2086 # flags are words
    start_server "$MODEL" 1 $SERVER_FLAGS
    start_redis 1
    declare -A suite_r=() suite_s=()
    for ((r = 0; r < ROUNDS; r++)); do
        in_turn "$r" suite_into suite_r "$REDIS_PORT" redis-server -- suite_into suite_s "$SP_RESP" sockpool-server
    done
    stop "$REDIS_PID"
    stop_sockpool
    for t in "${SUITE_TESTS[@]}"; do
        # shellcheck disable=SC2034 # read by row through its name
        read -ra t_r <<<"${suite_r[$t]:-0}"
        # shellcheck disable=SC2034
        read -ra t_s <<<"${suite_s[$t]:-0}"
        row "${t//_/ } | 1 | redis-server" t_r t_s
        SUITE_ROWS+=("${ROWS[-1]}")
        unset 'ROWS[-1]'
    done
fi

# ------------------------------------------------------------------------------------------------- report

echo
echo "## sockpool-server (run started $RUN_STARTED)"
echo
run_info
echo "$(redis-server --version | awk '{print $1, $2, $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
if [[ ,$ONLY, == *,peers,* ]]; then
echo
echo "## sockpool-server vs redis-server and nginx"
echo
echo "sockpool-server --model $MODEL $SERVER_FLAGS; ratio = sockpool / peer (higher is better for sockpool)"
echo
echo "median of $ROUNDS rounds each (alternating which server goes first); the last column is each round's ratio"
echo
echo "| load | workers | peer | peer req/s | sockpool req/s | ratio | rounds |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
fi
if [[ ,$ONLY, == *,idle,* ]]; then
echo
echo "## Memory per idle connection ($IDLE_CONNS connections, VmRSS)"
echo
echo "| server | RSS before (KiB) | RSS holding (KiB) | KiB per connection |"
echo "|---|---|---|---|"
echo "| sockpool-server --model $MODEL --workers 2 $SERVER_FLAGS | $sp_before | $sp_after | **$(per_conn "$sp_before" "$sp_after")** |"
echo "| redis-server (for scale) | $r_before | $r_after | $(per_conn "$r_before" "$r_after") |"
fi
if [[ ,$ONLY, == *,models,* ]]; then
echo
echo "## The six models, --workers 2 (ratio to async in parentheses)"
echo
echo "| model | ping -P 1 req/s | ping -P 16 req/s | wrk req/s |"
echo "|---|---|---|---|"
printf '%s\n' "${MODEL_ROWS[@]}"
fi
if [[ ,$ONLY, == *,fair,* ]]; then
echo
echo "## Fairness: wrk -t1 -c $FAIR_CONNS -d ${FAIR_DUR}s --latency, one worker each (medians of $ROUNDS rounds)"
echo
echo "| model | nginx req/s | nginx p99 ms | sockpool req/s | sockpool p99 ms | each round: p99 and rate, sockpool / nginx |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${FAIR_ROWS[@]}"
fi
if [[ ,$ONLY, == *,suite,* ]]; then
echo
echo "## redis-benchmark's default suite, -c $CLIENTS -n $SUITE_REQS, one worker each (medians of $ROUNDS rounds)"
echo
echo "| test | workers | peer | peer req/s | sockpool req/s | ratio | rounds |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${SUITE_ROWS[@]}"
fi
print_notes "## Notes"
