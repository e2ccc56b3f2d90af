#!/usr/bin/env bash
# Two builds of squall against each other: did a change make the hello path
# cheaper or dearer? The machine drifts ±20 % between minutes, so two runs of
# compare.sh an hour apart cannot tell a 5 % change from the weather. This
# runs the two binaries alternately, in the same minutes, on the same case,
# and prints every run and the medians.
#
#   benches/ab.sh A_BIN B_BIN [--rounds N] [--conns C] [--pipeline P]
#                 [--duration S] [--log LEVEL] [--port P]
#
#   --rounds N    pairs of runs (default 6); the order alternates A B, B A, ...
#                 so a drift in one direction hits both alike
#   --conns C     keep-alive connections (default 50)
#   --pipeline P  requests per write (default 1: one at a time)
#   --duration S  seconds per run (default 8)
#   --log LEVEL   RUST_LOG for both (default warn, as compare.sh)
#   --port P      first port; each run takes the next one (default 9500)
#
# Each binary is started fresh per run, pinned to CPU 0; the loadgen (built
# here if missing) runs on CPU 1 with --server-pid, so the server's CPU per
# request comes from /proc. The last line is one JSON summary:
# {"a": {"cpu_us_per_req": median, "rps": median, "runs": n}, "b": {...},
#  "b_over_a_cpu": ratio of the medians, "b_over_a_cpu_paired": median of
#  the per-round ratios, "rounds_b_cheaper": count, "flagged": runs where
#  the client used over 90 % of its core or another process over 10 % of one}.
#
# A difference is real when B is cheaper (or dearer) in nearly every round,
# not when the medians differ by less than the runs spread: this machine
# has minutes when everything runs a third slower. For a change of
# a few percent, count instructions instead (valgrind --tool=callgrind, see
# docs/benchmarks.md "Comparing two builds").
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,30p' "$0"; exit 2; }
A_BIN=$1; B_BIN=$2; shift 2
ROUNDS=6; CONNS=50; PIPELINE=1; DURATION=8; LEVEL=warn; PORT=9500
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --conns) CONNS="$2"; shift ;;
        --pipeline) PIPELINE="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --log) LEVEL="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "ab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for bin in "$A_BIN" "$B_BIN"; do
    [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }
done

LOADGEN="${CARGO_TARGET_DIR:-$ROOT/benches/loadgen/target}/release/loadgen"
if [ ! -x "$LOADGEN" ]; then
    (cd "$ROOT/benches/loadgen" && cargo build --release -q) || exit 1
fi
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0); PIN_LOAD=(taskset -c 1)
else
    echo "ab.sh: WARNING: fewer than 2 CPUs or no taskset: running unpinned" >&2
    PIN_SERVER=(); PIN_LOAD=()
fi

SERVER_PID=""
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"; [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null' EXIT

# One run of one binary: prints "LABEL <loadgen JSON>" into $RESULTS.
run() {
    local label=$1 bin=$2
    PORT=$((PORT + 1))
    RUST_LOG=$LEVEL "${PIN_SERVER[@]}" "$bin" --port "$PORT" >/dev/null 2>&1 &
    SERVER_PID=$!
    if ! "$LOADGEN" probe --url "http://127.0.0.1:$PORT/healthz" --timeout 10 >/dev/null; then
        echo "ab.sh: $bin did not answer on port $PORT" >&2
        kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
        return 1
    fi
    local pipe=()
    [ "$PIPELINE" -gt 1 ] && pipe=(--pipeline "$PIPELINE")
    local summary
    summary=$("${PIN_LOAD[@]}" "$LOADGEN" hello --url "http://127.0.0.1:$PORT/hello" \
        --conns "$CONNS" "${pipe[@]}" --duration "$DURATION" --server-pid "$SERVER_PID" | tail -1)
    kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
    echo "$label $summary" >> "$RESULTS"
    echo "$label $summary" | python3 -c '
import json, sys
label, _, text = sys.stdin.read().partition(" ")
d = json.loads(text)
print("%s  %9.0f req/s  %6.3f us/req  client %3.0f%%  others %3.0f%%" % (
    label, d["rps"], d["server_cpu_us_per_req"],
    100 * d["client_cpu_frac"], 100 * (d.get("other_cpu_frac") or 0)))'
}

echo "A = $A_BIN"
echo "B = $B_BIN"
echo "hello, $CONNS connections, pipeline $PIPELINE, ${DURATION} s per run, RUST_LOG=$LEVEL, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        run A "$A_BIN"; run B "$B_BIN"
    else
        run B "$B_BIN"; run A "$A_BIN"
    fi
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = {"A": [], "B": []}
flagged = 0
for line in open(sys.argv[1]):
    label, _, text = line.partition(" ")
    d = json.loads(text)
    if "server_cpu_us_per_req" not in d:
        continue
    runs[label].append(d)
    if d.get("client_cpu_frac", 0) > 0.9 or (d.get("other_cpu_frac") or 0) > 0.1:
        flagged += 1
summary = {"flagged": flagged}
for label, ds in runs.items():
    if ds:
        summary[label.lower()] = {
            "cpu_us_per_req": round(statistics.median(d["server_cpu_us_per_req"] for d in ds), 3),
            "rps": round(statistics.median(d["rps"] for d in ds)),
            "runs": len(ds),
        }
if "a" in summary and "b" in summary:
    ratio = summary["b"]["cpu_us_per_req"] / summary["a"]["cpu_us_per_req"]
    summary["b_over_a_cpu"] = round(ratio, 3)
    # Round by round (the two runs of a round are seconds apart): the median
    # of those ratios, and in how many rounds B was the cheaper.
    pairs = [b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"]
             for a, b in zip(runs["A"], runs["B"])]
    summary["b_over_a_cpu_paired"] = round(statistics.median(pairs), 3)
    summary["rounds_b_cheaper"] = sum(p < 1 for p in pairs)
    print("medians: A %.3f, B %.3f us/req: B uses %.3fx A's CPU per request" % (
        summary["a"]["cpu_us_per_req"], summary["b"]["cpu_us_per_req"], ratio))
    print("round by round: median B/A %.3f; B cheaper in %d of %d rounds" % (
        summary["b_over_a_cpu_paired"], summary["rounds_b_cheaper"], len(pairs)))
print(json.dumps(summary, sort_keys=True))
PY
