#!/usr/bin/env bash
# iperf3 against `sockpool-loadgen stream`, both with 128 KiB buffers over loopback, in one run on one machine,
# printing the ratio (issue 5, item 4; target ≥ 0.8× iperf3's throughput).
#
#   bash benches/compare/stream.sh              # DUR seconds per tool (default 5), ROUNDS rounds (default 3)
#   DUR=1 ROUNDS=1 bash benches/compare/stream.sh   # a quick smoke run
#
# Both send in one direction over one TCP connection with 128 KiB application writes and the OS's socket
# buffers: iperf3 -c … -l 128K, and `sockpool-loadgen stream --direction up --buffer 128K` (framed SINK
# requests of 128 KiB to an embedded sockpool-server, 16 in flight). The rounds alternate the two tools so that
# drift on this shared machine hits both; the ratio uses each tool's median.
# iperf3's server binds 127.0.0.1 on a free port; everything started here is stopped on exit (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
BUF=128K

for tool in iperf3 python3 timeout; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (bash .ci/run installs the peers)" >&2; exit 1; }
done

cargo build --release -q -p sockpool-loadgen
LOADGEN="$ROOT/target/release/sockpool-loadgen"

TMP=$(mktemp -d)
IPERF_PID=""
cleanup() {
    [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iperf3 -s -B 127.0.0.1 -p "$PORT" >"$TMP/iperf-server.log" 2>&1 &
IPERF_PID=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$TMP/iperf"
: >"$TMP/sockpool"
for r in $(seq "$ROUNDS"); do
    timeout $((DUR + 20)) iperf3 -c 127.0.0.1 -p "$PORT" -l "$BUF" -t "$DUR" -J >"$TMP/iperf.json"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/8)' \
        "$TMP/iperf.json" >>"$TMP/iperf"
    timeout $((DUR + 20)) "$LOADGEN" stream --direction up --buffer "$BUF" --duration "${DUR}s" --quiet --json - \
        >"$TMP/sp.json" 2>/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cells"][0]["bytes_per_s"])' \
        "$TMP/sp.json" >>"$TMP/sockpool"
    printf 'round %d: iperf3 %.2f Gbit/s, sockpool-loadgen stream %.2f Gbit/s\n' "$r" \
        "$(tail -1 "$TMP/iperf" | awk '{print $1*8/1e9}')" "$(tail -1 "$TMP/sockpool" | awk '{print $1*8/1e9}')"
done

I=$(median <"$TMP/iperf")
S=$(median <"$TMP/sockpool")
awk -v i="$I" -v s="$S" -v buf="$BUF" 'BEGIN {
    printf "\n128 KiB buffers, loopback, one connection, median of the rounds:\n"
    printf "  iperf3                   %8.2f Gbit/s\n", i*8/1e9
    printf "  sockpool-loadgen stream  %8.2f Gbit/s\n", s*8/1e9
    printf "  ratio                    %8.2fx  (target >= 0.80x: %s)\n", s/i, (s/i >= 0.8) ? "met" : "NOT met"
}'
