#!/usr/bin/env bash
# Reproduce the benchmark of "Introduction to Tornado", chapter 5, on the
# /rate demo: siege -c10 -t10s against /rate/blocking, /rate/async and
# /rate/offload, with the slow upstream's delay at 1 s. A fresh server per
# route, so requests left over from one run cannot slow the next.
#
#   scripts/bench-rate.sh                  # needs Debian's siege and curl
#   DELAY=1000 WORKERS=4 TIME=10s scripts/bench-rate.sh
#
# Only 127.0.0.1 is used; each run is bounded by siege's -t.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-$((20000 + RANDOM % 10000))}
DELAY=${DELAY:-1000}
WORKERS=${WORKERS:-16}
CONCURRENCY=${CONCURRENCY:-10}
TIME=${TIME:-10s}
ROUTES=${ROUTES:-blocking async offload}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
echo "upstream delay ${DELAY} ms, ${WORKERS} worker threads, siege -c${CONCURRENCY} -t${TIME}"
for route in $ROUTES; do
    RUST_LOG=error "$TARGET/release/squall" --port "$PORT" \
        --upstream-delay-ms "$DELAY" --worker-threads "$WORKERS" &
    pid=$!
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    echo "== /rate/$route"
    siege -c"$CONCURRENCY" -t"$TIME" "http://127.0.0.1:$PORT/rate/$route?q=tornado" 2>&1 \
        | grep -E '"(transactions|elapsed_time|transaction_rate|response_time|failed_transactions|longest_transaction|shortest_transaction)"' || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done
