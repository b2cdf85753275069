# Sourced by every compare script, right after `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib.sh"
#
# It moves to the repository root, names the run (run_info), makes a scratch folder ($TMP) and sets one trap that
# stops everything the script started, on a normal exit, on an error and on Ctrl-C. Then, once for every script:
# the release build, free loopback ports, starting redis-server, nginx, memcached, iperf3 and sockpool-server and
# waiting for them, stopping them, the "missing tool" check, medians, ratios and the report's notes.
#
# Every peer and helper runs in its own process group (setsid), recorded in PGIDS, so stopping it stops all its
# processes (nginx's workers, redis's threads) and the trap can stop whatever is still running.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables the start_* functions set are read by the scripts

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
SCRIPT=$(basename "$0")
BIN="$ROOT/target/release" # where build_release puts the binaries

# A run is named by when it started and by the code it measured. `-dirty` in the revision marks uncommitted
# changes, so a figure is never credited to a commit that did not produce it.
RUN_STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
RUN_REV=$(git describe --always --dirty 2>/dev/null || echo '?')

# run_info: one line for a report's header: start and end time, machine, kernel, revision.
run_info() {
    echo "$RUN_STARTED to $(date -u '+%H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), git $RUN_REV"
}

# The settings every script shares, in one place.
HTTP_BODY=13 # sockpool-server's --http-body-size default; nginx answers a body of the same length
# redis-server's --maxclients: the larger of the two values the scripts had (20000, not 10000), since the scale
# rows (server.sh's IDLE_CONNS, 10,000 idle connections plus the load's) need more than 10000.
REDIS_MAXCLIENTS=20000
# How long stop() waits after SIGTERM before SIGKILL: longer than sockpool-server's default --shutdown-deadline
# (10 s), so a server that drains in-flight requests still exits by itself and prints its `stats` line.
STOP_WAIT=15
START_TRIES=3 # a port free when picked can be taken before the peer binds it: pick another, this many times

# quick name=value...: under QUICK=1 (a smoke run of the script itself: tiny loads, meaningless numbers), each knob
# not set in the environment takes this value.
quick() {
    [ "${QUICK:-0}" = 1 ] || return 0
    local kv name
    for kv in "$@"; do
        name=${kv%%=*}
        [ -n "${!name:-}" ] || printf -v "$name" '%s' "${kv#*=}"
    done
}

# need tool...: stops the script at once, with one clear line, if a tool it uses is not on PATH.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool (bash .ci/run installs the peers)" >&2; exit 1; }
    done
}
need setsid timeout
[ -x /usr/bin/time ] || { echo "missing tool: /usr/bin/time (GNU time; apt install time)" >&2; exit 1; }

# ------------------------------------------------------------------------------------- processes and clean-up

TMP=$(mktemp -d)
PGIDS=()  # process groups to stop on exit: every peer and helper runs in its own (setsid)
FG_PID="" # the load command running now (see fg_run)

cleanup() {
    local g
    if [ -n "$FG_PID" ]; then kill -TERM "$FG_PID" 2>/dev/null || true; fi
    for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    sleep 0.3
    for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    rm -rf "$TMP"
    # A temporary `git worktree` made under $TMP (loadgen.sh's baseline build) is gone now: forget it.
    git worktree prune 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# limit_total seconds: past that, the script stops itself (and the trap cleans up). The watchdog runs in its own
# process group, so the clean-up stops it (and its sleep) like every other helper.
limit_total() {
    setsid bash -c "sleep $1 && echo '$SCRIPT: over TOTAL_LIMIT=${1}s, stopping' >&2 && kill -TERM $$" &
    PGIDS+=("$!")
}

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

# build_release: the release binaries of every compare script, in one cargo command, so that each script builds
# with the same feature resolution and one script's build never invalidates another's.
build_release() {
    echo "building (release) ..." >&2
    fg_run cargo build --release -q -p sockpool-server -p sockpool-loadgen -p sockpool-benches --bins
}

spawn() { # log cmd...: runs cmd in its own process group, output in $TMP/log.out and .err; sets SPAWNED
    local log=$1
    shift
    setsid "$@" >"$TMP/$log.out" 2>"$TMP/$log.err" </dev/null &
    SPAWNED=$!
    PGIDS+=("$SPAWNED")
}

stop() { # pid: SIGTERM to its group, wait up to STOP_WAIT s, then SIGKILL; sets STOP_RC to its exit status
    local pid=$1 i g
    local -a keep=()
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_WAIT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
    for g in "${PGIDS[@]}"; do [ "$g" = "$pid" ] || keep+=("$g"); done # never signal a reused id at exit
    PGIDS=("${keep[@]}")
}

# --------------------------------------------------------------------------------------------------- ports

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

# on_free_port spawn_fn args...: picks a free port, calls `spawn_fn port args...` (which spawns a server on
# 127.0.0.1:port) and waits 10 s for it to listen; START_TRIES times. Sets PEER_PID and PEER_PORT.
on_free_port() {
    local fn=$1 try
    shift
    for ((try = 1; try <= START_TRIES; try++)); do
        PEER_PORT=$(free_port)
        "$fn" "$PEER_PORT" "$@"
        PEER_PID=$SPAWNED
        wait_port "$PEER_PORT" 10 && return 0
        tail -n 3 "$TMP/$SPAWNED_LOG".* >&2 2>/dev/null || true
        stop "$PEER_PID"
    done
    echo "${fn#spawn_} did not start on a free port after $START_TRIES tries" >&2
    exit 1
}

# ------------------------------------------------------------------------------------------------- the peers

# The flags of sockpool_testkit::peers::start_redis.
spawn_redis() { # port io_threads
    SPAWNED_LOG="redis-$1"
    spawn "$SPAWNED_LOG" redis-server --bind 127.0.0.1 --port "$1" --save '' --appendonly no \
        --protected-mode no --io-threads "$2" --maxclients "$REDIS_MAXCLIENTS"
}
start_redis() { # io_threads; sets REDIS_PID REDIS_PORT
    on_free_port spawn_redis "$1"
    REDIS_PID=$PEER_PID REDIS_PORT=$PEER_PORT
}

# The configuration of sockpool_testkit::peers::start_nginx: `return 200` with a body of HTTP_BODY bytes,
# no access log, keep-alive for the whole run, `reuseport` (one accept queue per worker).
nginx_conf() { # dir port workers
    local body
    body=$(printf '%*s' "$HTTP_BODY" '' | tr ' ' x)
    cat <<EOF
daemon off;
master_process on;
worker_processes $3;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$2 reuseport;
    location / { return 200 "$body"; }
    location = /download.bin { root $1/www; }
  }
}
EOF
}
spawn_nginx() { # port workers
    local dir="$TMP/nginx-$1"
    SPAWNED_LOG="nginx-$1"
    mkdir -p "$dir/www"
    # A static file for download rows (DOWNLOAD_BYTES, default none): GET /download.bin. nginx's workers run as
    # another user (nobody) when it is started as root: the path must be theirs to read.
    if [ -n "${DOWNLOAD_BYTES:-}" ]; then
        head -c "$DOWNLOAD_BYTES" /dev/zero >"$dir/www/download.bin"
        chmod a+x "$TMP" "$dir" "$dir/www" && chmod a+r "$dir/www/download.bin"
    fi
    nginx_conf "$dir" "$1" "$2" >"$dir/nginx.conf"
    spawn "$SPAWNED_LOG" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
}
start_nginx() { # workers; sets NGINX_PID NGINX_PORT
    on_free_port spawn_nginx "$1"
    NGINX_PID=$PEER_PID NGINX_PORT=$PEER_PORT
}

spawn_memcached() { # port threads
    SPAWNED_LOG="memcached-$1"
    spawn "$SPAWNED_LOG" memcached --listen=127.0.0.1 --port="$1" --udp-port=0 --threads="$2" \
        --conn-limit="$REDIS_MAXCLIENTS" --user="$(id -un)"
}
start_memcached() { # threads; sets MEMCACHED_PID MEMCACHED_PORT
    on_free_port spawn_memcached "$1"
    MEMCACHED_PID=$PEER_PID MEMCACHED_PORT=$PEER_PORT
}

spawn_iperf3() { # port
    SPAWNED_LOG="iperf3-$1"
    spawn "$SPAWNED_LOG" iperf3 -s -B 127.0.0.1 -p "$1"
}
start_iperf3() { # sets IPERF_PID IPERF_PORT
    on_free_port spawn_iperf3
    IPERF_PID=$PEER_PID IPERF_PORT=$PEER_PORT
}

# start_sockpool label flags...: the release sockpool-server with these flags (its listeners on 127.0.0.1:0), in
# the background; waits 10 s for its `ready` line. Sets SP_PID and SP_LOG; sp_port tells the ports it picked.
SP_STARTS=0
start_sockpool() {
    local i
    SP_STARTS=$((SP_STARTS + 1))
    SP_LOG="sp-$1-$SP_STARTS"
    shift
    spawn "$SP_LOG" "$BIN/sockpool-server" "$@"
    SP_PID=$SPAWNED
    for ((i = 0; i < 200; i++)); do
        grep -qx ready "$TMP/$SP_LOG.out" 2>/dev/null && return 0
        kill -0 "$SP_PID" 2>/dev/null || { cat "$TMP/$SP_LOG.err" >&2; echo "sockpool-server died" >&2; exit 1; }
        sleep 0.05
    done
    echo "sockpool-server not ready after 10 s" >&2
    exit 1
}

sp_port() { # proto: the port of the last-started sockpool-server's listener for proto, from its `listening` line
    local port
    port=$(awk -v p="$1" '$1 == "listening" && $2 == p {n = split($3, a, ":"); print a[n]; exit}' "$TMP/$SP_LOG.out")
    [ -n "$port" ] || { echo "no $1 port in sockpool-server's output:" >&2; cat "$TMP/$SP_LOG.out" >&2; exit 1; }
    echo "$port"
}

stop_sockpool() { # stops the last-started sockpool-server and checks the contract: SIGTERM -> `stats` line, exit 0
    local log=$SP_LOG
    stop "$SP_PID"
    if [ "$STOP_RC" != 0 ] || ! grep -q '^stats ' "$TMP/$log.out"; then
        note "sockpool-server ($log) exited with status $STOP_RC on SIGTERM$(grep -q '^stats ' "$TMP/$log.out" || echo ', no stats line')"
    fi
}

# --------------------------------------------------------------------------------------------- the loads

# The functions below set globals instead of printing, so that NOTES and PGIDS are never changed in a subshell
# and lost.

# rb port pipeline requests clients label: redis-benchmark -t ping; sets RB_MB and RB_IN (requests/s of PING_MBULK
# and PING_INLINE; 0 when not measured).
rb() {
    local csv="$TMP/rb.csv" err="$TMP/rb.err"
    RB_MB=0 RB_IN=0
    if ! fg_run timeout 120 redis-benchmark -h 127.0.0.1 -p "$1" -t ping -c "$4" -n "$3" -P "$2" --csv \
        >"$csv" 2>"$err"; then
        note "redis-benchmark against $5 -P $2 failed or timed out: $(tr '\r\n' '  ' <"$err" | tail -c 300)"
    fi
    if grep -qi error "$err" "$csv"; then
        note "redis-benchmark against $5 -P $2 reported errors: $(grep -hi error "$err" "$csv" | head -3 | tr '\r\n' '  ')"
    fi
    RB_MB=$(awk -F'"' '$2 == "PING_MBULK" {print $4}' "$csv")
    RB_IN=$(awk -F'"' '$2 == "PING_INLINE" {print $4}' "$csv")
    : "${RB_MB:=0}" "${RB_IN:=0}"
}

# A command prefixed with "${PEAK_RSS[@]}" FILE writes its peak resident set size (KiB, GNU time's %M) to FILE.
PEAK_RSS=(/usr/bin/time -f %M -o)
# rss_of file: the KiB that PEAK_RSS wrote (0 when the command did not finish).
rss_of() { if [ -s "$1" ]; then awk '/^[0-9]+$/ {v = $1} END {print v + 0}' "$1"; else echo 0; fi; }

# wrk_rps port threads seconds clients label [path]: wrk GET path (default /); sets WRK_RPS (requests/s; 0 when not
# measured) and WRK_RSS (its peak RSS in KiB).
wrk_rps() {
    local out="$TMP/wrk.out"
    WRK_RPS=0 WRK_RSS=0
    if ! fg_run timeout $(($3 + 60)) "${PEAK_RSS[@]}" "$TMP/wrk.rss" wrk -t "$2" -c "$4" -d "${3}s" "http://127.0.0.1:$1${6:-/}" >"$out" 2>&1; then
        note "wrk -t $2 against $5 failed or timed out: $(tail -c 300 "$out" | tr '\n' ' ')"
    fi
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        note "wrk -t $2 against $5: $(grep -hE 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')"
    fi
    WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    : "${WRK_RPS:=0}"
    WRK_RSS=$(rss_of "$TMP/wrk.rss")
}

# in_turn round cmd_a... -- cmd_b...: runs a then b on even rounds and b then a on odd ones, so neither side of a
# comparison always gets the warmer or quieter turn.
in_turn() {
    local round=$1
    local -a a=()
    shift
    while [ "$1" != -- ]; do a+=("$1") && shift; done
    shift
    if ((round % 2 == 0)); then "${a[@]}" && "$@"; else "$@" && "${a[@]}"; fi
}

# ------------------------------------------------------------------------------------------------ the report

# median value...: the middle value; of an even count the lower of the two middle ones, so the median is always a
# measured round (a report can show that round's other figures beside it).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v a="${1:-0}" 'BEGIN { printf "%.0f", a }'; }

NOTES=()
note() { # adds a line to the report's notes, once
    local n
    for n in "${NOTES[@]}"; do [ "$n" = "$1" ] && return 0; done
    NOTES+=("$1")
}
print_notes() { # heading: the notes under that heading, if there are any
    [ "${#NOTES[@]}" -gt 0 ] || return 0
    echo
    echo "$1"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
}
