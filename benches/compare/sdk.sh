#!/usr/bin/env bash
# The sockpool SDK against a minimal hand-written tokio loop, on the same sockpool-server, in one run (issue 3,
# item 9): framed ECHO of 64 B; SDK pool of 50 at pipelining 1 and 16 vs 50 connections doing write_all/read_exact.
#
#   bash benches/compare/sdk.sh                 # about 30 s after the build
#   SECONDS_EACH=1 ROUNDS=1 bash benches/compare/sdk.sh
#
# The server is the release sockpool-server binary (framed on a free loopback port, --workers WORKERS, default 1),
# a separate process from the clients; benches/src/bin/sdk_vs_loop.rs runs the three clients in turn, ROUNDS times,
# and prints the medians and ratios. Everything it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/compare/run_info.sh
. benches/compare/run_info.sh
SECONDS_EACH=${SECONDS_EACH:-3}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1}
THREADS=${THREADS:-1}

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "building (release) ..." >&2
cargo build --release -q -p sockpool-server -p sockpool-benches --bin sockpool-server --bin sdk_vs_loop

target/release/sockpool-server --listen framed=127.0.0.1:0 --workers "$WORKERS" >"$TMP/server.out" 2>"$TMP/server.err" </dev/null &
SERVER_PID=$!
for _ in $(seq 200); do
    grep -qx ready "$TMP/server.out" && break
    sleep 0.05
done
grep -qx ready "$TMP/server.out" || { cat "$TMP/server.err" >&2; echo "sockpool-server did not start" >&2; exit 1; }
ADDR=$(awk '$1 == "listening" && $2 == "framed" {print $3; exit}' "$TMP/server.out")

echo "$(run_info), sockpool-server --workers $WORKERS"
# Bounded: ROUNDS x 3 clients x (SECONDS_EACH + 0.5 s warm-up), plus connection set-up; timeout as a backstop.
timeout $((ROUNDS * 3 * (SECONDS_EACH + 2) + 60)) target/release/sdk_vs_loop --addr "$ADDR" \
    --seconds "$SECONDS_EACH" --rounds "$ROUNDS" --threads "$THREADS"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
