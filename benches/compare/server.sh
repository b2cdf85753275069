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
#   4. The five concurrency models of sockpool-server (--workers 2) under the same loads as 1 and 2.
# Every peer and server binds 127.0.0.1 on a free port. Every load is bounded by a request count or a duration
# and by `timeout`; the whole script by TOTAL_LIMIT. Every process it starts is stopped on exit (trap).
#
# Knobs (environment): REQS (requests per -P 1 run), REQS_P16, WRK_DUR (seconds), ROUNDS (rounds per peer
# comparison, default 3: the table shows medians and every round's ratio), IDLE_CONNS, MODEL (the sockpool model
# used against the peers; default async), SERVER_FLAGS (more sockpool-server flags against the peers, e.g.
# SERVER_FLAGS="--busy-poll 50us"), TOTAL_LIMIT (seconds), ONLY (sections: peers,idle,models).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/compare/run_info.sh
. benches/compare/run_info.sh

if [ "${QUICK:-0}" = 1 ]; then
    : "${REQS:=20000}" "${REQS_P16:=100000}" "${WRK_DUR:=1}" "${IDLE_CONNS:=1000}" "${ROUNDS:=1}"
fi
REQS=${REQS:-100000}
REQS_P16=${REQS_P16:-2000000}
WRK_DUR=${WRK_DUR:-5}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
MODEL=${MODEL:-async}
SERVER_FLAGS=${SERVER_FLAGS:-} # more sockpool-server flags against the peers, e.g. "--busy-poll 50us"
TOTAL_LIMIT=${TOTAL_LIMIT:-1200}
ONLY=${ONLY:-peers,idle,models} # which sections to run
CLIENTS=50
HTTP_BODY=13 # sockpool-server's --http-body-size default; nginx gets a body of the same length

for tool in redis-server redis-benchmark nginx wrk setsid timeout; do
    command -v "$tool" >/dev/null || { echo "missing peer: $tool (bash .ci/run installs the peers)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PGIDS=() # process groups to stop on exit: every server, peer and helper runs in its own (setsid)
FG_PID="" # the load command running now (see fg_run)

cleanup() {
    local g
    [ -n "$FG_PID" ] && kill -TERM "$FG_PID" 2>/dev/null || true
    for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    sleep 0.3
    for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# The whole run is bounded: past TOTAL_LIMIT the script kills itself (and the trap cleans up).
# It runs in its own process group, so the cleanup stops it (and its sleep) like every other helper.
setsid bash -c "sleep $TOTAL_LIMIT && echo 'server.sh: over TOTAL_LIMIT=${TOTAL_LIMIT}s, stopping' >&2 && kill -TERM $$" &
PGIDS+=("$!")

# Enough descriptors for IDLE_CONNS on both ends (the client helper and the servers are our children).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "ulimit -n is $(ulimit -n), below IDLE_CONNS+1000; lowering IDLE_CONNS" >&2
    IDLE_CONNS=$(($(ulimit -n) - 1000))
fi

# ---------------------------------------------------------------------------------------------------- helpers

# Runs a command in the background and waits for it: bash runs a trap only once the foreground command ends,
# but interrupts `wait` at once, so a signal (or the watchdog) stops a long load right away.
fg_run() {
    local rc=0
    "$@" &
    FG_PID=$!
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return "$rc"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the kernel's ephemeral range (32768-60999 by default), so no outgoing connection holds the port.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12768))
        port_open "$p" || { echo "$p"; return; }
    done
}

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        port_open "$1" && return 0
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1 after $2 s" >&2
    return 1
}

spawn() { # logname cmd...: runs cmd in its own process group, records it for cleanup; sets SPAWNED
    local log=$1
    shift
    setsid "$@" >"$TMP/$log.out" 2>"$TMP/$log.err" </dev/null &
    SPAWNED=$!
    PGIDS+=("$SPAWNED")
}

stop() { # pid: SIGTERM to its group, wait up to 15 s, then SIGKILL; sets STOP_RC to its exit status
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

start_redis() { # io_threads; sets REDIS_PID REDIS_PORT (3 tries: a free port can be taken before redis binds it)
    local try
    for try in 1 2 3; do
        REDIS_PORT=$(free_port)
        spawn "redis$1-$try" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
            --protected-mode no --io-threads "$1" --maxclients 20000
        REDIS_PID=$SPAWNED
        wait_port "$REDIS_PORT" 10 && return 0
        tail -3 "$TMP/redis$1-$try.out" >&2
        stop "$REDIS_PID"
    done
    echo "redis-server did not start" >&2
    exit 1
}

start_nginx() { # workers; sets NGINX_PID NGINX_PORT (3 tries, as for redis)
    local dir="$TMP/nginx$1" body try
    mkdir -p "$dir"
    body=$(printf '%*s' "$HTTP_BODY" '' | tr ' ' x)
    for try in 1 2 3; do
    NGINX_PORT=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    location / { return 200 "$body"; }
  }
}
EOF
    spawn "nginx$1" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    NGINX_PID=$SPAWNED
    wait_port "$NGINX_PORT" 10 && return 0
    tail -3 "$dir/error.log" "$TMP/nginx$1.err" >&2 2>/dev/null || true
    stop "$NGINX_PID"
    done
    echo "nginx did not start" >&2
    exit 1
}

SP_STARTS=0
start_sockpool() { # model workers [more flags]; sets SP_PID SP_LOG SP_RESP SP_HTTP (ports), from its `listening` lines
    SP_STARTS=$((SP_STARTS + 1))
    local i log="sp-$1-$2-$SP_STARTS" model=$1 workers=$2
    shift 2
    SP_LOG=$log
    spawn "$log" "$SERVER" --model "$model" --workers "$workers" --max-connections 20000 --http-body-size "$HTTP_BODY" \
        --listen resp=127.0.0.1:0 --listen http=127.0.0.1:0 "$@"
    SP_PID=$SPAWNED
    for ((i = 0; i < 200; i++)); do
        grep -qx ready "$TMP/$log.out" 2>/dev/null && break
        kill -0 "$SP_PID" 2>/dev/null || { cat "$TMP/$log.err" >&2; echo "sockpool-server died" >&2; exit 1; }
        sleep 0.05
    done
    grep -qx ready "$TMP/$log.out" || { echo "sockpool-server not ready after 10 s" >&2; exit 1; }
    SP_RESP=$(awk '$1 == "listening" && $2 == "resp" {n = split($3, a, ":"); print a[n]; exit}' "$TMP/$log.out")
    SP_HTTP=$(awk '$1 == "listening" && $2 == "http" {n = split($3, a, ":"); print a[n]; exit}' "$TMP/$log.out")
    if [ -z "$SP_RESP" ] || [ -z "$SP_HTTP" ]; then
        echo "no resp/http port in sockpool-server's output:" >&2
        cat "$TMP/$log.out" >&2
        exit 1
    fi
}

stop_sockpool() { # checks the contract: SIGTERM -> `stats` line and exit 0
    local log=$SP_LOG
    stop "$SP_PID"
    if [ "$STOP_RC" != 0 ] || ! grep -q '^stats ' "$TMP/$log.out"; then
        NOTES+=("sockpool-server ($log) exited with status $STOP_RC on SIGTERM$(grep -q '^stats ' "$TMP/$log.out" || echo ', no stats line')")
    fi
}

# redis-benchmark ping; sets RB_MB and RB_IN (requests/s of PING_MBULK and PING_INLINE). Functions below set
# globals instead of printing, so that NOTES and PGIDS are never changed in a subshell and lost.
rb() { # port pipeline requests label
    local csv="$TMP/rb.csv" err="$TMP/rb.err"
    if ! fg_run timeout 120 redis-benchmark -h 127.0.0.1 -p "$1" -t ping -c "$CLIENTS" -n "$3" -P "$2" --csv >"$csv" 2>"$err"; then
        NOTES+=("redis-benchmark against $4 -P $2 failed or timed out: $(tr '\r\n' '  ' <"$err" | tail -c 300)")
    fi
    if grep -qi error "$err" "$csv"; then
        NOTES+=("redis-benchmark against $4 -P $2 reported errors: $(grep -hi error "$err" "$csv" | head -3 | tr '\r\n' '  ')")
    fi
    RB_MB=$(awk -F'"' '$2 == "PING_MBULK" {print $4}' "$csv")
    RB_IN=$(awk -F'"' '$2 == "PING_INLINE" {print $4}' "$csv")
}

wrk_rps() { # port label; sets WRK_RPS
    local out="$TMP/wrk.out"
    if ! fg_run timeout $((WRK_DUR + 30)) wrk -t 2 -c "$CLIENTS" -d "${WRK_DUR}s" "http://127.0.0.1:$1/" >"$out" 2>&1; then
        NOTES+=("wrk against $2 failed or timed out")
    fi
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        NOTES+=("wrk against $2: $(grep -hE 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')")
    fi
    WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
}

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v a="${1:-0}" 'BEGIN { printf "%.0f", a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
# One table row from two arrays of per-round rates (named): the medians, their ratio, and every round's ratio.
row() { # "load | workers | peer" peer_array sockpool_array
    local -n peer_r=$2 sp_r=$3
    local pm sm i each=""
    pm=$(median "${peer_r[@]}") sm=$(median "${sp_r[@]}")
    for i in "${!peer_r[@]}"; do each+="${each:+, }$(ratio "${sp_r[$i]}" "${peer_r[$i]}")"; done
    ROWS+=("| $1 | $(fmt "$pm") | $(fmt "$sm") | **$(ratio "$sm" "$pm")** | $each |")
}

echo "building (release) ..." >&2
fg_run cargo build --release -q -p sockpool-server -p sockpool-benches --bins
SERVER="$ROOT/target/release/sockpool-server"
IDLE="$ROOT/target/release/idle_conns"

NOTES=()
ROWS=()

# ------------------------------------------------------------------------------ 1 + 2: against redis and nginx

for w in 1 2; do
    [[ ,$ONLY, == *,peers,* ]] || break
    echo "workers=$w: redis-server --io-threads $w, nginx worker_processes $w, sockpool-server --model $MODEL --workers $w $SERVER_FLAGS" >&2
    start_sockpool "$MODEL" "$w" $SERVER_FLAGS
    # With 2 workers, redis-server is measured with --io-threads 2 (equal threads) and, for scale, with its
    # default --io-threads 1: its I/O threads busy-wait, which on a small or shared machine can make 2 slower.
    io_list=$w
    [ "$w" = 2 ] && io_list="2 1"
    for io in $io_list; do
        start_redis "$io"
        for p in 1 16; do
            n=$REQS
            [ "$p" = 16 ] && n=$REQS_P16
            r_mb=() r_in=() s_mb=() s_in=()
            for ((r = 0; r < ROUNDS; r++)); do
                # Alternate which server goes first, so neither always gets the warmer or quieter turn.
                if ((r % 2 == 0)); then
                    rb "$REDIS_PORT" "$p" "$n" "redis-server --io-threads $io"
                    r_mb+=("$RB_MB") r_in+=("$RB_IN")
                    rb "$SP_RESP" "$p" "$n" "sockpool-server"
                    s_mb+=("$RB_MB") s_in+=("$RB_IN")
                else
                    rb "$SP_RESP" "$p" "$n" "sockpool-server"
                    s_mb+=("$RB_MB") s_in+=("$RB_IN")
                    rb "$REDIS_PORT" "$p" "$n" "redis-server --io-threads $io"
                    r_mb+=("$RB_MB") r_in+=("$RB_IN")
                fi
            done
            row "redis-benchmark -t ping (PING_MBULK) -c $CLIENTS -P $p -n $n | $w | redis-server --io-threads $io" r_mb s_mb
            row "redis-benchmark -t ping (PING_INLINE) -c $CLIENTS -P $p -n $n | $w | redis-server --io-threads $io" r_in s_in
        done
        stop "$REDIS_PID"
    done
    start_nginx "$w"
    n_rps=() s_rps=()
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then
            wrk_rps "$NGINX_PORT" "nginx"; n_rps+=("$WRK_RPS")
            wrk_rps "$SP_HTTP" "sockpool-server"; s_rps+=("$WRK_RPS")
        else
            wrk_rps "$SP_HTTP" "sockpool-server"; s_rps+=("$WRK_RPS")
            wrk_rps "$NGINX_PORT" "nginx"; n_rps+=("$WRK_RPS")
        fi
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
        NOTES+=("idle_conns against $3 did not hold $IDLE_CONNS connections: $(head -c 300 "$TMP/$log.err")")
    fi
    sleep 1 # let the server finish accepting and registering every connection
    IDLE_AFTER=$(rss_kib "$1")
    stop "$helper"
}

sp_before="" sp_after="" r_before="" r_after=""
if [[ ,$ONLY, == *,idle,* ]]; then
    echo "idle connections: $IDLE_CONNS" >&2
    start_sockpool "$MODEL" 2 $SERVER_FLAGS
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
for m in async "async --busy-poll 50us" per-core threads event-loop processes; do
    [[ ,$ONLY, == *,models,* ]] || break
    echo "model $m --workers 2" >&2
    read -r model flags <<<"$m" # "async --busy-poll 50us" is a model and its flags
    # shellcheck disable=SC2086 # flags are words
    start_sockpool "$model" 2 $flags
    rb "$SP_RESP" 1 "$REQS" "sockpool-server --model $m"
    m_p1=$RB_MB
    rb "$SP_RESP" 16 "$REQS_P16" "sockpool-server --model $m"
    m_p16=$RB_MB
    wrk_rps "$SP_HTTP" "sockpool-server --model $m"
    m_wrk=$WRK_RPS
    stop_sockpool
    if [ -z "$base_p1" ]; then base_p1=$m_p1 base_p16=$m_p16 base_wrk=$m_wrk; fi
    MODEL_ROWS+=("| $m | $(fmt "$m_p1") ($(ratio "$m_p1" "$base_p1")) | $(fmt "$m_p16") ($(ratio "$m_p16" "$base_p16")) | $(fmt "$m_wrk") ($(ratio "$m_wrk" "$base_wrk")) |")
done

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
echo "## The five models, --workers 2 (ratio to async in parentheses)"
echo
echo "| model | ping -P 1 req/s | ping -P 16 req/s | wrk req/s |"
echo "|---|---|---|---|"
printf '%s\n' "${MODEL_ROWS[@]}"
fi
if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "## Notes"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
fi
