#!/usr/bin/env bash
# Echo benchmark: squall's line echo server pinned to CPU 0 (release build),
# the load generator (examples/echo_bench.rs, a separate mio client) pinned to
# CPU 1; 1000 clients; RUNS runs of DURATION seconds per workload; prints
# every run and the medians.
#
#   bash benches/echo.sh                 # squall only
#   TORNADO=1 bash benches/echo.sh       # also Tornado's echo server, same client
#
# Workloads (each client: write a round, wait for all of it back, repeat):
#   rtt   64-byte lines, one at a time       -> round trips/s, latency
#   bulk  16 KiB lines, 4 in flight          -> MB/s
#
# Knobs: RUNS (3), DURATION (10), CLIENTS (1000), PORT (8899; Tornado on PORT+1),
#        TORNADO_PYTHON (a python with tornado; default /tmp/tornado-venv/bin/python,
#        made with `python3 -m venv /tmp/tornado-venv && /tmp/tornado-venv/bin/pip install tornado`).
#
# This is a measurement, not a test: numbers depend on the machine, and on
# anything else running on it (the script warns if the CPUs are busy; with
# TORNADO=1 the runs alternate between the servers, so the ratio holds up
# better than the absolute numbers).
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-1000}
PORT=${PORT:-8899}
TORNADO=${TORNADO:-0}
TORNADO_PYTHON=${TORNADO_PYTHON:-/tmp/tornado-venv/bin/python}

cd "$(dirname "$0")/.."
cargo build --quiet --release --example echo_server --example echo_bench
BIN="${CARGO_TARGET_DIR:-target}/release/examples"

WORKLOADS=("rtt 64 1" "bulk 16384 4")
SERVER_PIDS=()
declare -A MED

cleanup() {
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap cleanup EXIT

wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server did not start listening on $1" >&2
    exit 1
}

busy_warning() {
    # CPU time used by other processes over one second, in percent of one CPU.
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
    local busy=$(( (b - a) * 100 / $(getconf CLK_TCK) ))
    if (( busy > 15 )); then
        echo "WARNING: the machine is busy (${busy}% of a CPU used while idle here);" \
             "absolute numbers will be low and noisy." >&2
    fi
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

# start_server NAME PORT: start the named server pinned to CPU 0.
start_server() {
    case "$1" in
        squall)
            RUST_LOG=warn taskset -c 0 "$BIN/echo_server" --port "$2" --max-line 1048576 &
            ;;
        tornado)
            taskset -c 0 "$TORNADO_PYTHON" benches/tornado_echo.py --port "$2" --max-line 1048576 &
            ;;
    esac
    SERVER_PIDS+=("$!")
    wait_for_port "$2"
}

SERVERS=(squall)
if [[ "$TORNADO" == 1 ]]; then
    if ! "$TORNADO_PYTHON" -c 'import tornado' 2>/dev/null; then
        echo "no tornado in $TORNADO_PYTHON (see the header of this script)" >&2
        exit 1
    fi
    SERVERS+=(tornado)
fi

echo "echo benchmark: $CLIENTS clients, $RUNS x ${DURATION}s per workload and server," \
     "servers on CPU 0, client on CPU 1"
[[ "$TORNADO" == 1 ]] && echo "tornado $("$TORNADO_PYTHON" -c 'import tornado; print(tornado.version)')"
busy_warning
# All servers listen at once (an idle one costs nothing) and runs alternate
# between them, so load from elsewhere on the machine hits both alike and
# the ratio stays meaningful even when the absolute numbers do not.
for i in "${!SERVERS[@]}"; do
    start_server "${SERVERS[$i]}" $((PORT + i))
done
declare -A RESULTS
for w in "${WORKLOADS[@]}"; do
    read -r label size depth <<<"$w"
    for run in $(seq 1 "$RUNS"); do
        for i in "${!SERVERS[@]}"; do
            name=${SERVERS[$i]}
            line=$(taskset -c 1 "$BIN/echo_bench" --addr "127.0.0.1:$((PORT + i))" \
                --clients "$CLIENTS" --duration "$DURATION" --size "$size" --depth "$depth")
            echo "  $name $label run $run: $line"
            RESULTS[$name.$label]+="$line"$'\n'
        done
    done
done
busy_warning
echo
for w in "${WORKLOADS[@]}"; do
    read -r label _ _ <<<"$w"
    for name in "${SERVERS[@]}"; do
        out=${RESULTS[$name.$label]}
        rt=$(printf '%s' "$out" | field rt_per_s | median)
        mb=$(printf '%s' "$out" | field mb_per_s | median)
        p50=$(printf '%s' "$out" | field round_p50_ms | median)
        p99=$(printf '%s' "$out" | field round_p99_ms | median)
        echo "MEDIAN $name $label: rt_per_s=$rt mb_per_s=$mb round_p50_ms=$p50 round_p99_ms=$p99"
        MED[$name.$label]=$rt
    done
    if [[ "$TORNADO" == 1 ]]; then
        awk -v s="${MED[squall.$label]}" -v t="${MED[tornado.$label]}" -v l="$label" \
            'BEGIN { if (t > 0) printf "RATIO %s: squall/tornado = %.2fx\n", l, s / t }'
    fi
done
