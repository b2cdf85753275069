#!/usr/bin/env bash
# sockpool-loadgen against redis-benchmark and wrk, in one run on one machine, printing ratios (issue 4, item 5).
#
#   bash benches/compare/loadgen.sh            # full run, about 2-3 minutes after the build
#   QUICK=1 bash benches/compare/loadgen.sh    # a smoke run of the script itself: tiny loads, meaningless numbers
#
# The same server answers both tools of a pair, so the ratio is the load generators' own difference:
#   1. redis-server PING, 50 connections, one client thread each: `redis-benchmark -t ping -c 50 -P 1|16 -n N`
#      (its PING_MBULK figure: the RESP array form, which is what sockpool-loadgen sends) vs
#      `sockpool-loadgen run --protocol resp --command PING --connections 50 --pipeline 1|16 --threads 1`.
#   2. nginx GET / (`return 200`, 13-byte body), 50 connections: `wrk -t T -c 50 -d Ds` vs
#      `sockpool-loadgen run --protocol http --connections 50 --threads T --duration Ds`, T = 1 and 2.
# Each pair runs ROUNDS times (default 5), alternating which tool goes first; the table shows each tool's median
# and every round's ratio, so a ratio within the rounds' spread reads as that. sockpool-loadgen's own health
# (busiest worker's CPU share, its "bottleneck" flag, in its median round) is printed beside it.
# Every peer binds 127.0.0.1 on a free port. Every load is bounded by a request count or a duration and by
# `timeout`; the whole script by TOTAL_LIMIT. Every process it starts is stopped on exit (trap).
#
# Knobs (environment): ONLY (which pairs: redis, nginx, or the default redis,nginx), REQS (redis-benchmark -n at
# -P 1), REQS_P16 (at -P 16), DUR (seconds of each sockpool-loadgen and wrk run), ROUNDS, NGINX_WORKERS, TOTAL_LIMIT
# (seconds), LOADGEN (the sockpool-loadgen binary to measure; default: the one this script builds).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/compare/run_info.sh
. benches/compare/run_info.sh

if [ "${QUICK:-0}" = 1 ]; then
    : "${REQS:=20000}" "${REQS_P16:=100000}" "${DUR:=1}" "${ROUNDS:=1}"
fi
REQS=${REQS:-300000}
REQS_P16=${REQS_P16:-3000000}
DUR=${DUR:-5}
ONLY=${ONLY:-redis,nginx}
ROUNDS=${ROUNDS:-5}
NGINX_WORKERS=${NGINX_WORKERS:-2}
TOTAL_LIMIT=${TOTAL_LIMIT:-900}
CLIENTS=50
HTTP_BODY=13 # as sockpool-server's --http-body-size default, like benches/compare/server.sh

for tool in redis-server redis-benchmark nginx wrk jq setsid timeout; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool (bash .ci/run installs the peers)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PGIDS=()  # process groups to stop on exit: every peer and helper runs in its own (setsid)
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

# The whole run is bounded: past TOTAL_LIMIT the script stops itself (and the trap cleans up).
setsid bash -c "sleep $TOTAL_LIMIT && echo 'loadgen.sh: over TOTAL_LIMIT=${TOTAL_LIMIT}s, stopping' >&2 && kill -TERM $$" &
PGIDS+=("$!")

# ---------------------------------------------------------------------------------------------------- helpers

# Runs a command in the background and waits for it, so a signal (or the watchdog) interrupts a long load at once.
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

spawn() { # logname cmd...: runs cmd in its own process group, recorded for cleanup; sets SPAWNED
    local log=$1
    shift
    setsid "$@" >"$TMP/$log.out" 2>"$TMP/$log.err" </dev/null &
    SPAWNED=$!
    PGIDS+=("$SPAWNED")
}

stop() { # pid: SIGTERM to its group, wait up to 10 s, then SIGKILL
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The same flags as sockpool_server::testing::start_redis.
start_redis() { # sets REDIS_PID REDIS_PORT
    REDIS_PORT=$(free_port)
    spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --protected-mode no --maxclients 10000
    REDIS_PID=$SPAWNED
    wait_port "$REDIS_PORT" 10
}

# The configuration of sockpool_server::testing::start_nginx (`return 200` with a fixed body, no access log).
start_nginx() { # workers; sets NGINX_PID NGINX_PORT
    local dir="$TMP/nginx" body
    mkdir -p "$dir"
    body=$(printf '%*s' "$HTTP_BODY" '' | tr ' ' x)
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
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 200 "$body"; }
  }
}
EOF
    spawn nginx nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    NGINX_PID=$SPAWNED
    wait_port "$NGINX_PORT" 10
}

NOTES=()
note() { # adds a line to the report's notes, once
    local n
    for n in "${NOTES[@]}"; do [ "$n" = "$1" ] && return 0; done
    NOTES+=("$1")
}

rb() { # port pipeline requests; sets RB (PING_MBULK requests/s)
    local csv="$TMP/rb.csv" err="$TMP/rb.err"
    RB=0
    if ! fg_run timeout 120 redis-benchmark -h 127.0.0.1 -p "$1" -t ping -c "$CLIENTS" -n "$3" -P "$2" --csv \
        >"$csv" 2>"$err"; then
        NOTES+=("redis-benchmark -P $2 failed or timed out: $(tr '\r\n' '  ' <"$err" | tail -c 300)")
        return 0
    fi
    if grep -qi error "$err" "$csv"; then
        NOTES+=("redis-benchmark -P $2 reported errors: $(grep -hi error "$err" "$csv" | head -3 | tr '\r\n' '  ')")
    fi
    RB=$(awk -F'"' '$2 == "PING_MBULK" {print $4}' "$csv")
    : "${RB:=0}"
}

wrk_rps() { # port threads; sets WRK
    local out="$TMP/wrk.out"
    WRK=0
    if ! fg_run timeout $((DUR + 30)) wrk -t "$2" -c "$CLIENTS" -d "${DUR}s" "http://127.0.0.1:$1/" >"$out" 2>&1; then
        NOTES+=("wrk -t $2 failed or timed out: $(tail -c 300 "$out" | tr '\n' ' ')")
        return 0
    fi
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        NOTES+=("wrk -t $2: $(grep -hE 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')")
    fi
    WRK=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    : "${WRK:=0}"
}

# sockpool-loadgen with --json -; sets LG (summary.rate), LG_CPU (busiest worker's CPU share), LG_BN (bottleneck
# flag) and LG_ERR (summary.errors). LG_ARGS is the command line, for the report.
lg() { # label args...
    local label=$1 json="$TMP/lg.json" err="$TMP/lg.err"
    shift
    LG=0 LG_CPU="?" LG_BN="?" LG_ERR="?"
    if ! fg_run timeout $((DUR + 30)) "$LOADGEN" run --quiet --json - --connections "$CLIENTS" --duration "${DUR}s" \
        "$@" >"$json" 2>"$err"; then
        note "sockpool-loadgen ($label) failed or timed out: $(tail -c 300 "$err" | tr '\n' ' ')"
        return 0
    fi
    LG=$(jq -r '.summary.rate' "$json")
    LG_ERR=$(jq -r '.summary.errors' "$json")
    LG_CPU=$(jq -r '.health.max_worker_cpu_share * 100 | floor' "$json")
    LG_BN=$(jq -r '.health.bottleneck' "$json")
    if [ "$LG_ERR" != 0 ]; then
        NOTES+=("sockpool-loadgen ($label): $LG_ERR errors: $(jq -c '.errors' "$json")")
    fi
    jq -r '.health.warnings[]?' "$json" | while read -r w; do echo "  sockpool-loadgen ($label) warns: $w" >&2; done
}

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v a="${1:-0}" 'BEGIN { printf "%.0f", a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "not measured (see notes)"; else if (r + 0 >= t + 0) print "met"; else printf "**missed** (%.0f%% short)", (1 - r / t) * 100 }'; }

ROWS=()

# One comparison: peer command (a shell function setting a variable) vs sockpool-loadgen, ROUNDS times,
# alternating which goes first. The row shows each tool's median rate, their ratio (judged against the target),
# every round's ratio, and sockpool-loadgen's health in its median round.
# row label peer_label peer_fn peer_var target lg_label lg_args...
compare() {
    local label=$1 peer_label=$2 peer_fn=$3 peer_var=$4 target=$5 lg_label=$6 r i
    shift 6
    local -a peer_args peer_r=() lg_r=() health=()
    read -r -a peer_args <<<"$peer_fn"
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then
            "${peer_args[@]}"
            lg "$lg_label" "$@"
        else
            lg "$lg_label" "$@"
            "${peer_args[@]}"
        fi
        peer_r+=("${!peer_var:-0}") lg_r+=("${LG:-0}") health+=("${LG_CPU}% / $LG_BN")
        echo "  $label round $((r + 1)): $peer_label $(fmt "${!peer_var}")/s, sockpool-loadgen $(fmt "$LG")/s (cpu ${LG_CPU}%, bottleneck $LG_BN)" >&2
    done
    local pm lm rt each="" mid=""
    pm=$(median "${peer_r[@]}") lm=$(median "${lg_r[@]}")
    for i in "${!peer_r[@]}"; do
        each+="${each:+, }$(ratio "${lg_r[$i]}" "${peer_r[$i]}")"
        [ -z "$mid" ] && [ "${lg_r[$i]}" = "$lm" ] && mid=${health[$i]}
    done
    rt=$(ratio "$lm" "$pm")
    # A tool with no successful round was not measured: no ratio, rather than a ratio of 0 or infinity.
    if [ "$(fmt "$lm")" = 0 ] || [ "$(fmt "$pm")" = 0 ]; then rt="n/a"; fi
    ROWS+=("| $label | $peer_label | $(fmt "$pm") | $(fmt "$lm") | **$rt** | $target | $(verdict "$rt" "$target") | $each | $mid |")
}

echo "building (release) ..." >&2
fg_run cargo build --release -q -p sockpool-loadgen -p sockpool-server
LOADGEN=${LOADGEN:-"$ROOT/target/release/sockpool-loadgen"}
# A binary that prints no help is not a load generator (e.g. a placeholder `fn main() {}`): stop with a clear line.
if ! "$LOADGEN" run --help 2>/dev/null | grep -q -- '--json'; then
    echo "$LOADGEN does not implement \`run --json\` (placeholder main?); set LOADGEN=/path/to/sockpool-loadgen" >&2
    exit 1
fi

# ------------------------------------------------------------------------------------------ 1: redis PING

if [[ ,$ONLY, == *,redis,* ]]; then
    start_redis
    echo "redis-server on 127.0.0.1:$REDIS_PORT" >&2
    compare "redis PING, -c $CLIENTS -P 1" "redis-benchmark" "rb $REDIS_PORT 1 $REQS" RB 1.5 "resp -P 1" \
        --target "127.0.0.1:$REDIS_PORT" --protocol resp --command PING --pipeline 1 --threads 1
    compare "redis PING, -c $CLIENTS -P 16" "redis-benchmark" "rb $REDIS_PORT 16 $REQS_P16" RB 1.0 "resp -P 16" \
        --target "127.0.0.1:$REDIS_PORT" --protocol resp --command PING --pipeline 16 --threads 1
    stop "$REDIS_PID"
fi

# ------------------------------------------------------------------------------------------- 2: nginx GET

if [[ ,$ONLY, == *,nginx,* ]]; then
    start_nginx "$NGINX_WORKERS"
    echo "nginx (worker_processes $NGINX_WORKERS) on 127.0.0.1:$NGINX_PORT" >&2
    for t in 1 2; do
        compare "nginx GET, -c $CLIENTS, $t thread(s)" "wrk" "wrk_rps $NGINX_PORT $t" WRK 1.0 "http -t $t" \
            --target "127.0.0.1:$NGINX_PORT" --protocol http --threads "$t"
    done
    stop "$NGINX_PID"
fi

# ------------------------------------------------------------------------------------------------- report

echo
run_info
echo "$(redis-server --version | awk '{print $1, $2, $3}'), $(redis-benchmark --version 2>&1 | head -1), $(nginx -v 2>&1 | sed 's/^nginx version: //') (worker_processes $NGINX_WORKERS), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "redis-benchmark -n $REQS (-P 1) / $REQS_P16 (-P 16), its PING_MBULK rate; wrk and sockpool-loadgen -d ${DUR}s; median of $ROUNDS rounds each (alternating which tool goes first)"
echo "sockpool-loadgen: $LOADGEN"
echo "ratio = sockpool-loadgen / peer (higher is better for sockpool-loadgen); health = sockpool-loadgen's busiest worker CPU share / its bottleneck flag"
echo
echo "| load (same server for both) | peer | peer req/s | sockpool-loadgen req/s | ratio | target | | each round's ratio | sockpool-loadgen health |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Notes:"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
fi
