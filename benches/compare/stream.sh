#!/usr/bin/env bash
# iperf3 against `sockpool-loadgen stream`, both with 128 KiB buffers over loopback, in one run on one machine,
# printing the ratio (issue 5, item 4; target ≥ 0.8× iperf3's throughput).
#
#   bash benches/compare/stream.sh              # DUR seconds per tool (default 5), ROUNDS rounds (default 3)
#   QUICK=1 bash benches/compare/stream.sh      # a smoke run: DUR=1 ROUNDS=1
#   LOADGEN=/path/to/sockpool-loadgen bash benches/compare/stream.sh   # another build (e.g. an older commit's)
#
# Both send in one direction over one TCP connection with 128 KiB application writes and the OS's socket
# buffers: iperf3 -c … -l 128K, and `sockpool-loadgen stream --direction up --buffer 128K` (framed SINK
# requests of 128 KiB to an embedded sockpool-server, 16 in flight). The rounds alternate the two tools so that
# drift on this shared machine hits both; the ratio uses each tool's median (for an even ROUNDS the lower middle
# round, as in every compare script). iperf3's server binds 127.0.0.1 on a free port; everything started here is
# stopped on exit (trap).
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

quick DUR=1 ROUNDS=1
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
BUF=128K

need iperf3 jq
build_release
LOADGEN=${LOADGEN:-"$BIN/sockpool-loadgen"}
start_iperf3

iperf=() sockpool=() # bytes/s of each round
for ((r = 1; r <= ROUNDS; r++)); do
    fg_run timeout $((DUR + 20)) iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -l "$BUF" -t "$DUR" -J >"$TMP/iperf.json"
    iperf+=("$(jq '.end.sum_received.bits_per_second / 8' "$TMP/iperf.json")")
    fg_run timeout $((DUR + 20)) "$LOADGEN" stream --direction up --buffer "$BUF" --duration "${DUR}s" \
        --quiet --json - >"$TMP/sp.json" 2>/dev/null
    sockpool+=("$(jq '.cells[0].bytes_per_s' "$TMP/sp.json")")
    printf 'round %d: iperf3 %.2f Gbit/s, sockpool-loadgen stream %.2f Gbit/s\n' "$r" \
        "$(awk -v b="${iperf[-1]}" 'BEGIN {print b*8/1e9}')" "$(awk -v b="${sockpool[-1]}" 'BEGIN {print b*8/1e9}')"
done
stop "$IPERF_PID"

echo
run_info
echo "sockpool-loadgen: $LOADGEN"
awk -v i="$(median "${iperf[@]}")" -v s="$(median "${sockpool[@]}")" 'BEGIN {
    printf "128 KiB buffers, loopback, one connection, median of the rounds:\n"
    printf "  iperf3                   %8.2f Gbit/s\n", i*8/1e9
    printf "  sockpool-loadgen stream  %8.2f Gbit/s\n", s*8/1e9
    printf "  ratio                    %8.2fx  (target >= 0.80x: %s)\n", s/i, (s/i >= 0.8) ? "met" : "NOT met"
}'
