#!/usr/bin/env bash
# Server CPU time per request (issue 14, must-show 4): sockpool-server, each model with one worker, against
# redis-server (RESP PING) and nginx (one worker, HTTP GET), at the same fixed open-loop rate from our own load
# generator, side by side in one run.
#
#   bash benches/compare/server_cpu.sh            # about 8 minutes after the build (the defaults below)
#   QUICK=1 bash benches/compare/server_cpu.sh    # a smoke run of the script itself: tiny loads, meaningless numbers
#
# Every server is started once, all of them beside each other (idle when not measured): redis-server
# (--io-threads 1), nginx (worker_processes 1, `return 200` with a 13-byte body: the same work as sockpool's HTTP
# reply, no file I/O), and sockpool-server --model M --workers 1 with a resp and an http listener, for every M in
# MODELS. One load is `sockpool-loadgen run --rate RATE --connections CONNS --threads 1 --duration DURs` (release
# build) of RESP PING or HTTP GET /. A server's CPU time is utime + stime of every process in its process group
# (the `processes` model's supervisor and worker, nginx's master and worker), read from /proc/PID/stat just before
# and just after the load; CPU per request = that / the replies the load generator counted. ROUNDS rounds (3), each
# running every load once, in an order rotated from round to round; the table shows each server's median and
# every round's ratio against the peer in that round.
#
# `uring-batched` is `--model uring --batch-wait BATCH_WAIT` (500us): io_uring's min_wait holds each wake-up until
# more completions join it, trading up to BATCH_WAIT of latency per request for fewer wake-ups. Every row also
# shows the median latency (p50 / p99, µs, corrected) of its RESP load, so that trade is in the table.
#
# Targets (issue 14): the `uring` model at most 0.7x both peers' CPU per request (plain `uring` or `uring-batched`, with
# its latency beside it), and no model above 1.0x.
#
# Every peer and server binds 127.0.0.1. Every load is bounded by its duration and by `timeout`; the whole script
# by TOTAL_LIMIT. Every process it starts is stopped on exit (trap).
#
# Knobs (environment): RATE (requests/s of every load), CONNS, DUR (seconds per load), ROUNDS, MODELS (the
# sockpool models, default all six and uring-batched), BATCH_WAIT, TOTAL_LIMIT (seconds).
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

quick RATE=2000 DUR=1 ROUNDS=1
RATE=${RATE:-10000}
CONNS=${CONNS:-50}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
MODELS=${MODELS:-async per-core threads event-loop processes uring uring-batched}
BATCH_WAIT=${BATCH_WAIT:-500us}
TOTAL_LIMIT=${TOTAL_LIMIT:-1800}

need redis-server nginx jq pgrep
limit_total "$TOTAL_LIMIT"
build_release
LOADGEN="$BIN/sockpool-loadgen"
TICK=$(getconf CLK_TCK)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# cpu_ticks pgid: utime + stime, in clock ticks, of every process in the process group.
cpu_ticks() {
    local pid total=0 t
    for pid in $(pgrep -g "$1"); do
        # Fields after the `(comm)`, which may hold spaces: utime and stime are the 12th and 13th.
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# measure pgid port proto label: one load against 127.0.0.1:port; sets US (the server's CPU µs per reply, or
# "n/a" when the load failed).
measure() {
    local pgid=$1 port=$2 proto=$3 label=$4 json="$TMP/lg.json" err="$TMP/lg.err" before after replies
    local -a what=(--protocol http)
    [ "$proto" = resp ] && what=(--protocol resp --command PING)
    US=n/a
    LAT[$label]=n/a
    before=$(cpu_ticks "$pgid")
    if ! fg_run timeout $((DUR + 60)) "$LOADGEN" run --quiet --json - --target "127.0.0.1:$port" "${what[@]}" \
        --connections "$CONNS" --threads 1 --rate "$RATE" --duration "${DUR}s" >"$json" 2>"$err"; then
        note "sockpool-loadgen against $label failed: $(tail -c 300 "$err" | tr '\n' ' ')"
        return 0
    fi
    after=$(cpu_ticks "$pgid")
    replies=$(jq -r '.summary.replies // 0' "$json")
    if [ "$(jq -r '.summary.errors // 0' "$json")" != 0 ]; then
        note "sockpool-loadgen against $label: errors $(jq -c '.errors' "$json")"
    fi
    US=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$replies" \
        'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "n/a" }')
    echo "  $label: $US µs/request ($((after - before)) ticks, $replies replies)" >&2
    LAST[$label]=$US
    LAT[$label]="$(jq -r '"\(.latency.corrected.p50 | floor) / \(.latency.corrected.p99 | floor)"' "$json")"
}

# ------------------------------------------------------------------------------------------------- the servers

start_redis 1
start_nginx 1
declare -A SP_PGID SP_RESP SP_HTTP
for m in $MODELS; do
    flags=(--model "$m")
    [ "$m" = uring-batched ] && flags=(--model uring --batch-wait "$BATCH_WAIT")
    start_sockpool "$m" "${flags[@]}" --workers 1 --http-body-size "$HTTP_BODY" \
        --listen resp=127.0.0.1:0 --listen http=127.0.0.1:0
    SP_PGID[$m]=$SP_PID
    SP_RESP[$m]=$(sp_port resp)
    SP_HTTP[$m]=$(sp_port http)
    if grep -q WARNING "$TMP/$SP_LOG.err"; then note "sockpool-server --model $m: $(grep WARNING "$TMP/$SP_LOG.err")"; fi
done

# ---------------------------------------------------------------------------------------------------- rounds

# Each model's load runs right beside its peer's (which goes first alternates from round to round), so every ratio
# compares two loads a few seconds apart: on a shared machine the background moves between loads far more than
# within a pair.
declare -A VALS PAIR LATS # LATS[key]: every load's latency, p50 / p99 µs; VALS[key]: every measurement, µs/request; PAIR[key]: every pair's ratio to the peer
pair() { # round key peer_key pgid port proto label peer_pgid peer_port
    local r=$1 key=$2 peer=$3 mine theirs
    in_turn "$r" measure "$8" "$9" "$6" "$peer" -- measure "$4" "$5" "$6" "$7"
    # in_turn ran both: recover each one's figure from the log of the last two measurements
    mine=${LAST[$7]} theirs=${LAST[$peer]}
    VALS[$key]="${VALS[$key]:-} $mine" VALS[$peer]="${VALS[$peer]:-} $theirs"
    LATS[$key]="${LATS[$key]:-}; ${LAT[$7]:-n/a}" LATS[$peer]="${LATS[$peer]:-}; ${LAT[$peer]:-n/a}"
    PAIR[$key]="${PAIR[$key]:-} $(ratio "$mine" "$theirs")"
}
declare -A LAST LAT # label -> its latest µs/request, and its load's latency (p50 / p99 µs)
for ((r = 0; r < ROUNDS; r++)); do
    echo "round $((r + 1))/$ROUNDS: $RATE requests/s, $CONNS connections, ${DUR}s per load" >&2
    for m in $MODELS; do
        pair "$r" "$m-resp" redis-server "${SP_PGID[$m]}" "${SP_RESP[$m]}" resp "sockpool-server-$m-resp" \
            "$REDIS_PID" "$REDIS_PORT"
        pair "$r" "$m-http" nginx "${SP_PGID[$m]}" "${SP_HTTP[$m]}" http "sockpool-server-$m-http" \
            "$NGINX_PID" "$NGINX_PORT"
    done
done

stop "$REDIS_PID"
stop "$NGINX_PID"
for m in $MODELS; do stop "${SP_PGID[$m]}"; done

# ---------------------------------------------------------------------------------------------------- report

# shellcheck disable=SC2086 # the values are words
med() { median $1; }
R=$(med "${VALS[redis-server]}")
N=$(med "${VALS[nginx]}")
VERDICT=() URING_ROWS=() URING_MET=()
echo
echo "Server CPU time per request (issue 14, must-show 4): $(run_info)"
echo
echo "Load: \`sockpool-loadgen run --rate $RATE --connections $CONNS --threads 1 --duration ${DUR}s\` (RESP PING or HTTP GET /), \
$ROUNDS rounds, each model's load beside its peer's; load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo "CPU µs per request: utime+stime of the server's processes over the load / replies, median of its runs; the ratio is"
echo "the median of the pairs' ratios (each pair: the model's load and its peer's, back to back), every pair's in parentheses."
echo
echo "| server (1 worker) | RESP PING µs/req | / redis-server | HTTP GET µs/req | / nginx | RESP load p50 / p99 µs, each run |"
echo "|---|---|---|---|---|---|"
echo "| redis-server --io-threads 1 | $R | 1 | | | $(echo "${LATS[redis-server]#; }" | cut -d';' -f1-3) … |"
echo "| nginx worker_processes 1 (\`return 200\`) | | | $N | 1 | |"
for m in $MODELS; do
    rr=$(med "${PAIR[$m-resp]}") hr=$(med "${PAIR[$m-http]}")
    each_r=${PAIR[$m-resp]# } each_h=${PAIR[$m-http]# }
    each_r=${each_r// /, } each_h=${each_h// /, }
    name="--model $m"
    [ "$m" = uring-batched ] && name="--model uring --batch-wait $BATCH_WAIT"
    echo "| sockpool-server $name | $(med "${VALS[$m-resp]}") | **$rr** ($each_r) | $(med "${VALS[$m-http]}") | **$hr** ($each_h) | ${LATS[$m-resp]#; } |"
    for x in "$rr" "$hr"; do
        if [ "$x" = n/a ] || awk -v x="$x" 'BEGIN { exit !(x > 1.0) }'; then
            VERDICT+=("$m: $rr× redis-server, $hr× nginx; the target is ≤ 1.0×")
            break
        fi
    done
    # The 0.7× target is the `uring` model's, plain or with --batch-wait: met by a row at or under it on both.
    case $m in uring | uring-batched)
        URING_ROWS+=("$name: $rr× / $hr×")
        if [ "$rr" != n/a ] && [ "$hr" != n/a ] && awk -v a="$rr" -v b="$hr" 'BEGIN { exit !(a <= 0.7 && b <= 0.7) }'; then
            URING_MET+=("$name")
        fi
        ;;
    esac
done
if [ "${#URING_ROWS[@]}" -eq 0 ]; then
    VERDICT+=("uring: not measured (MODELS has neither uring nor uring-batched), so its ≤ 0.7× target is not judged")
elif [ "${#URING_MET[@]}" -eq 0 ]; then
    VERDICT+=("uring: no row at ≤ 0.7× both peers ($(IFS=';' && echo "${URING_ROWS[*]}"))")
fi
echo
if [ "${#VERDICT[@]}" -eq 0 ]; then
    echo "Targets met: ${URING_MET[*]} ≤ 0.7× both peers, no model above 1.0×."
else
    echo "Targets not met:"
    printf -- '- %s\n' "${VERDICT[@]}"
fi
print_notes "Notes:"
