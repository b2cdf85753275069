#!/usr/bin/env bash
# The sockpool SDK against a minimal hand-written tokio loop, on the same sockpool-server, in one run (issue 3,
# item 9): framed ECHO of 64 B; SDK pool of 50 at pipelining 1 and 16 vs 50 connections doing write_all/read_exact.
#
#   bash benches/compare/sdk.sh                 # about 30 s after the build
#   QUICK=1 bash benches/compare/sdk.sh         # a smoke run: SECONDS_EACH=1 ROUNDS=1
#
# The server is the release sockpool-server binary (framed on a free loopback port, --workers WORKERS, default 1),
# a separate process from the clients; benches/src/bin/sdk_vs_loop.rs runs the three clients in turn, ROUNDS times,
# and prints the medians and ratios. Everything it starts is stopped on exit.
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

quick SECONDS_EACH=1 ROUNDS=1
SECONDS_EACH=${SECONDS_EACH:-3}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1}
THREADS=${THREADS:-1}

build_release
start_sockpool framed --listen framed=127.0.0.1:0 --workers "$WORKERS"
ADDR=127.0.0.1:$(sp_port framed)

echo "$(run_info), sockpool-server --workers $WORKERS"
# Bounded: ROUNDS x 3 clients x (SECONDS_EACH + 0.5 s warm-up), plus connection set-up; timeout as a backstop.
fg_run timeout $((ROUNDS * 3 * (SECONDS_EACH + 2) + 60)) "$BIN/sdk_vs_loop" --addr "$ADDR" \
    --seconds "$SECONDS_EACH" --rounds "$ROUNDS" --threads "$THREADS"
stop "$SP_PID"
