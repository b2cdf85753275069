#!/usr/bin/env bash
# The SDK's Redis client with its defaults against redis-rs (ConnectionManager) and deadpool-redis (default pool),
# on one redis-server, in one run (issue 16, must-show 1): 50 tokio tasks each doing SET+GET+INCRBY in a loop.
#
#   bash benches/compare/sdk_vs_redis_rs.sh            # about 50 s after the build
#   QUICK=1 bash benches/compare/sdk_vs_redis_rs.sh    # a smoke run: SECONDS_EACH=1 ROUNDS=1
#   DEPTH=16 CONNS=4 bash benches/compare/sdk_vs_redis_rs.sh   # other SDK settings (the table says so)
#
# redis-server runs on a free loopback port of its own (no persistence, one I/O thread), a separate process from
# the clients. benches/src/bin/sdk_vs_redis_rs.rs runs the three clients one after another in each round (the
# order rotating), ROUNDS times, and prints the medians, the ratios and each round's ratio. Everything it
# starts is stopped on exit.
set -euo pipefail
# shellcheck source=benches/compare/lib.sh
. "$(dirname "$0")/lib.sh"

need redis-server
quick SECONDS_EACH=1 ROUNDS=1
SECONDS_EACH=${SECONDS_EACH:-3}
ROUNDS=${ROUNDS:-5}
TASKS=${TASKS:-50}
THREADS=${THREADS:-2}
EXTRA=()
[ -z "${DEPTH:-}" ] || EXTRA+=(--depth "$DEPTH")
[ -z "${CONNS:-}" ] || EXTRA+=(--conns "$CONNS")

build_release
start_redis 1

echo "$(run_info), redis-server $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Bounded: ROUNDS x 3 clients x (SECONDS_EACH + 0.5 s warm-up), plus set-up; timeout as a backstop.
fg_run timeout $((ROUNDS * 3 * (SECONDS_EACH + 3) + 60)) "$BIN/sdk_vs_redis_rs" --addr "127.0.0.1:$REDIS_PORT" \
    --tasks "$TASKS" --seconds "$SECONDS_EACH" --rounds "$ROUNDS" --threads "$THREADS" "${EXTRA[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
stop "$REDIS_PID"
